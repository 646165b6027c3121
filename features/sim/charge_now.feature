@sim @scheduling
Feature: Charging when low-carbon supply is plentiful
  On request of the remote server (e.g. a windy afternoon) the assembly
  charges now, up to the requested charge, until the request expires
  (claims 2, 3, 10–13).

  Scenario: A low-carbon request charges the battery until it expires
    Given a terrace house with a 5 kWh LFP battery assembly at 30% charge
    And there is no PV
    When the day runs until 13:00
    And the remote server asks the assembly to charge from low-carbon supply at 1000 W up to 90% for 30 minutes
    And 40 minutes pass
    Then the battery power is at most -900 W at 13:15
    And the charger input adds up to at least 0.45 kWh from 13:00 to 13:30
    And the battery power is at least -50 W at 13:35
