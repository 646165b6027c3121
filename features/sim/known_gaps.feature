@sim @known-gap
Feature: Known gaps — scenarios that fail today
  These scenarios state behaviour DESIGN.md asks for that the controller
  does not deliver yet. They are excluded from the default runs (`cargo
  test` and CI run `@sim and not @slow and not @known-gap`) and listed in
  the issue notes with their measured figures; run them with
  `maslow test features/sim/known_gaps.feature`. When one passes, remove
  its `@known-gap` by moving it to its function's feature file.

  # Measured (seed 804433668): the inverter kept serving the AC loads
  # (≈ 300 W, peaks 2.3 kW) until the pack reached its 5 % floor at 23:08,
  # 5 h 08 min into the cut; the essential lighting went dark 52 min before
  # its 6 h minimum runtime.
  @resilience
  Scenario: Essential lighting lasts its minimum runtime in a long evening cut
    Given a terrace house with a 5 kWh LFP battery assembly at 60% charge
    And the lighting-downstairs circuit is essential
    When the mains fails at 18:00 for 6 hours
    Then the lighting-downstairs circuit stays powered for the whole cut

  # Measured: at 12 % charge (≈ 360 Wh above the floor, less than the
  # essential circuits' 6 h need) the office sockets stayed powered for the
  # whole 30 minutes after the mains failed at 17:00.
  @resilience
  Scenario: Non-essential sockets are shed at once when the battery is low
    Given a terrace house with a 5 kWh LFP battery assembly at 12% charge
    And the office-sockets circuit has priority 3
    When the day runs until 17:00
    And the mains fails
    And 30 minutes pass
    Then the office-sockets circuit is shed within 1 minute
