@fleet
Feature: A PV-heavy branch absorbs its export at midday
  On a clear midsummer day half the households of a branch export PV
  surplus. The server asks the branch's assemblies with room to charge so
  that no power flows back through the transformer; the copy of the branch
  without the requirement exports.

  Scenario: The branch's assemblies absorb the PV export from 11:00 to 14:00
    Given the fleet pv_export
    When the fleet runs until 14:00
    Then the transformer power of branch 1 is at least 0 kW in at least 90% of the minutes from 11:10 to 14:00
    And the transformer power of branch 2 averages at most -3 kW from 11:10 to 14:00
    And the battery power of branch 1 averages at most -1 kW from 11:10 to 14:00
    And no assembly on branch 2 reports an accepted dispatch
