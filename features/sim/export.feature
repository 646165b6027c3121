@sim @export
Feature: PV surplus goes into storage, not the grid
  Local generation is preferred: PV above the house's own load charges the
  battery, and export stays within the site's limit (claims 5, 10–13).

  Scenario: A clear summer noon charges the battery instead of exporting
    Given a terrace house with a 5 kWh LFP battery assembly at 30% charge
    And the roof has 3.2 kWp of PV
    And the weather is clear
    When the day runs until 14:00
    Then grid export never exceeds 50 W from 10:00 to 14:00
    And the state of charge is at least 40 % at 14:00
