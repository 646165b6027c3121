@sim @demand
Feature: Demand signals from the smart meter and the remote server
  Signals — charge, discharge, limit import, shed or defer, cancel — are
  acknowledged, bounded by safety limits and the resilience reserve, and
  followed (claims 1, 9, 20).

  Scenario: A limit on grid import is acknowledged and followed
    Given a terrace house with a 5 kWh LFP battery assembly at 80% charge
    When the day runs until 13:00
    And the remote server asks to limit grid import to 100 W for 60 minutes
    And 30 minutes pass
    Then the remote server receives an acknowledgement accepting the signal within 1 second
    And the grid import is at most 150 W at 13:30

  Scenario: A request beyond the protection limit is rejected
    Given a terrace house with a 5 kWh LFP battery assembly at 80% charge
    When the day runs until 11:00
    And the remote server asks the assembly to discharge at 20000 W for 30 minutes
    And 1 minutes pass
    Then the remote server receives an acknowledgement rejecting the signal because exceeds power limit within 1 second

  Scenario: A request to shed a circuit switches it off until cancelled
    Given a terrace house with a 5 kWh LFP battery assembly at 60% charge
    When the day runs until 10:00
    And the remote server asks to shed the office-sockets circuit for 60 minutes
    And 2 minutes pass
    Then the remote server receives an acknowledgement accepting the signal within 1 second
    And the office-sockets circuit is shed within 30 seconds
