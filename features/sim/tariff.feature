@sim @demand
Feature: The smart meter's tariff indicator as a demand signal
  The controller turns the meter's tariff indicator into a demand signal
  by its configured tariff rules, tells the remote server, and follows the
  signal until the tariff changes (claims 1, 9, 20).

  Scenario: The meter's off-peak signal starts charging and the normal tariff stops it
    Given a terrace house with a 5 kWh LFP battery assembly at 40% charge
    And there is no PV
    And the controller charges at 1000 W when the meter signals off-peak from 12:00 to 16:00
    When the day runs until 13:00
    And the smart meter switches to the off-peak tariff
    And 10 minutes pass
    Then the remote server is told the meter's signal was accepted within 30 seconds
    And the battery power settles below -900 W within 2 minutes
    When the smart meter switches to the normal tariff
    And 10 minutes pass
    Then the battery power settles above -50 W within 2 minutes
