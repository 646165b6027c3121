@fleet
Feature: Assemblies fall back to local operation when the server is silent
  A dispatch lasts minutes, not hours: when the server goes silent, the
  commands in force run out and each assembly returns to its own local
  operation; when the server returns, the branch is managed again.

  Scenario: The server goes silent in the middle of the event, then returns
    Given the fleet two_branches
    And the server is silent from 20:45 to 21:15
    When the fleet runs until 22:00
    Then the battery power of branch 1 averages at least 2 kW from 20:25 to 20:45
    And the battery power of branch 1 averages at most 0.3 kW from 20:55 to 21:15
    And the transformer power of branch 1 averages at least 8.5 kW from 20:55 to 21:15
    And the transformer power of branch 1 is at most 8 kW in at least 80% of the minutes from 21:25 to 21:45
