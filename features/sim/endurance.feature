@sim @slow @endurance
Feature: Days of ordinary life
  Longer runs (tagged @slow: not in `cargo test`, run by CI separately)
  that check what must hold every day, not at one event.

  Scenario: Three days with PV never export and never breach the floor
    Given a terrace house with a 5 kWh LFP battery assembly at 50% charge
    And the weather is cloudy
    When 72 hours pass
    Then grid export never exceeds 50 W
    And the state of charge never falls below 4 %
    And the bus voltage stays between 44 and 58 V
