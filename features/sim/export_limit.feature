@sim @export
Feature: Export held to the site's limit
  The PV is DC-coupled. With the battery full, the inverter takes the PV
  surplus to the house's AC loads and exports up to the site's limit; PV
  beyond that is curtailed (claim 5). A sudden drop in the house's load is
  answered within seconds, an export limitation scheme's reaction time
  (5 s in ENA G100).

  Scenario: A full battery on a clear day: the surplus serves the house, is exported up to the limit, the rest curtailed
    Given a terrace house with a 5 kWh LFP battery assembly at 100% charge
    And the roof has 3.2 kWp of PV
    And the weather is clear
    And export to the grid is limited to 500 W
    When the day runs until 13:30
    Then grid export never exceeds 500 W for more than 5 seconds from 11:00 to 13:30
    And grid export adds up to at least 1 kWh from 11:00 to 13:30
    And grid import from 11:00 to 13:30 is at most 0.05 kWh
    And the PV curtailment adds up to at least 1 kWh from 11:00 to 13:30
