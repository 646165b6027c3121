@sim @peak
Feature: Assured peak reduction
  In the evening peak the assembly supplies the DC loads, and the AC loads
  through the inverter, so that grid import falls by the assured amount
  (claim 4, FIG 7b); off-peak it charges just enough for the coming peak.

  Scenario: Evening import is cut against a house without the assembly
    Given a terrace house with a 5 kWh LFP battery assembly at 50% charge
    And the evening peak runs from 16:00 to 20:00
    And the assembly assures a peak reduction of 300 W
    When the day runs until 20:00
    Then grid import from 16:00 to 20:00 is at least 50% below the baseline without the battery assembly
    And grid import from 16:00 to 20:00 averages at least 300 W below the baseline without the battery assembly
    And grid import from 16:00 to 20:00 is at least 1.2 kWh below the baseline without the battery assembly

  Scenario: Off-peak charging fills the battery for the evening
    Given a terrace house with a 5 kWh LFP battery assembly at 20% charge
    And there is no PV
    And the off-peak tariff runs from 00:30 to 07:30
    When the day runs until 07:30
    Then the state of charge stays between 19 and 100 % from 00:00 to 07:30
    And the state of charge is at least 24 % at 07:30

  # The same house with an NMC pack (13s21p 21700 5 Ah cells, 4.95 kWh):
  # the controller's estimator and protection take the NMC cell's
  # characterisation (firmware/config/chemistry/nmc811_21700_5ah.toml).
  Scenario: An NMC assembly cuts the evening peak within its cells' limits
    Given a terrace house with a 5 kWh NMC battery assembly at 60% charge
    When the day runs until 21:00
    Then grid import from 16:00 to 20:00 is at least 50% below the baseline without the battery assembly
    And the highest cell voltage never exceeds 4.2 V
    And the lowest cell voltage never falls below 3.0 V
