@fleet
Feature: Forged and replayed dispatch on a branch is rejected by every assembly
  Dispatch is signed by the server's key, carries a strictly increasing
  sequence number and an expiry; every assembly verifies it in the
  firmware and counts what it rejects (claims 1, 20).

  Scenario: A forged and a replayed dispatch are rejected and counted by every assembly
    Given the fleet two_branches
    And an attacker sends a forged dispatch to branch 1 at 20:40
    And an attacker sends a replayed dispatch to branch 1 at 20:50
    When the fleet runs until 21:00
    Then every assembly on branch 1 reports at least 1 dispatch rejected as bad signature
    And every assembly on branch 1 reports at least 1 dispatch rejected as replayed
    And the transformer power of branch 1 is at most 8 kW in at least 85% of the minutes from 20:20 to 21:00
