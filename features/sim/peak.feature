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

  # The report's "met" is the controller's own, stricter verdict: the
  # assured reduction (less 5 W) for 95 % of the window and on average. Half
  # a 5 kWh pack (1.5 kWh above the reserve, spread over the window) cuts
  # 386 W on average but reaches 295 W in 93 % of it (lowest minute
  # 289 W): reported missed (`--seed 795027389`). On a sunny summer evening the
  # PV covers the house at 16:00 and the battery's share, which the
  # controller counts, is below 300 W for 43 % of the window: missed as
  # well, though import is cut by more than 300 W on average (`--seed
  # 623363993`). Without PV, half a 10 kWh pack holds 3 kWh above the
  # reserve: measured 594 W (2.375 kWh) below the baseline, reported met
  # with 625 W on average and 332 W in its lowest minute (seed 495201480).
  Scenario: A pack that holds the evening's energy cuts the peak by the assured reduction and reports it met
    Given a terrace house with a 10 kWh LFP battery assembly at 50% charge
    And there is no PV
    When the day runs until 20:05
    Then grid import from 16:00 to 20:00 averages at least 300 W below the baseline without the battery assembly
    And the assembly reports the peak from 16:00 to 20:00 as met

  # A retired couple's evening use is a few hundred watts: with export off
  # the assembly can cut import by no more than the house draws, so an
  # assured 1500 W cannot be delivered, and the report must say so
  # (measured 420 W below the baseline; reported missed, 263 W on average,
  # seed 213875620).
  Scenario: An assured reduction beyond the house's evening use is reported missed
    Given a terrace house with a 5 kWh LFP battery assembly at 80% charge
    And the household is a retired couple
    And the assembly assures a peak reduction of 1500 W
    When the day runs until 20:05
    Then grid import from 16:00 to 20:00 averages at most 1500 W below the baseline without the battery assembly
    And the assembly reports the peak from 16:00 to 20:00 as missed

  # Midwinter in Manchester: the roof yields little and the night's
  # off-peak charge, sized on the evening demand the controller has
  # learned, leaves a pack at 30 % as it is: the roof gives 0.494 kWh all
  # day, import is 0.699 kWh, 175 W below the baseline (14.0 %). The report
  # must not claim the assured 300 W (reported missed: 184 W on average,
  # seed 982159867).
  Scenario: On a midwinter day a pack the night did not fill cuts the peak by less than assured, and says so
    Given a terrace house with a 5 kWh LFP battery assembly at 30% charge
    And the date is 2026-12-21
    And the site is at latitude 53.48 and longitude -2.24
    And the weather is overcast
    When the day runs until 20:05
    Then the PV power adds up to at most 1 kWh from 00:00 to 20:00
    And grid import from 16:00 to 20:00 averages at least 100 W below the baseline without the battery assembly
    And grid import from 16:00 to 20:00 averages at most 300 W below the baseline without the battery assembly
    And the assembly reports the peak from 16:00 to 20:00 as missed

  # Day 2 starts from where day 1 left the battery; the sun refills it
  # (93.95 % at 16:00 on day 2; the second evening 906 W, 3.624 kWh below
  # the baseline, seed 21488873).
  @slow
  Scenario: The second evening's peak is cut as well as the first
    Given a terrace house with a 5 kWh LFP battery assembly at 50% charge
    When the day runs until 20:00 on day 2
    Then the state of charge is at least 90 % at 16:00 on day 2
    And grid import from 16:00 on day 2 to 20:00 on day 2 averages at least 300 W below the baseline without the battery assembly

  # Without PV the first evening takes the pack to its 20 % reserve and
  # the night's off-peak charge, sized on the evening demand the controller
  # has learned rather than on the assured reduction, lifts it to 24.5 %
  # by 07:30 on day 2: the second evening's import is 0.220 kWh, 55 W
  # (7.1 %) below the baseline, not the assured 300 W (seed 784878782).
  @slow @known-gap
  Scenario: Without PV the night's off-peak charge carries the second evening's assured reduction
    Given a terrace house with a 5 kWh LFP battery assembly at 50% charge
    And there is no PV
    When the day runs until 20:05 on day 2
    Then grid import from 16:00 on day 2 to 20:00 on day 2 averages at least 300 W below the baseline without the battery assembly
    And the assembly reports the peak from 16:00 on day 2 to 20:00 on day 2 as met

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
