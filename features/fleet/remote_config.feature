@fleet
Feature: The server configures a branch's assemblies by signed configuration messages
  Configuration messages are signed by the server's key like dispatch and
  carry the site and branch, a sequence number and an expiry. Each
  assembly verifies them in the firmware and applies a setting only
  within the hard local bounds its installer set (`[cluster.remote_config]`:
  reserve 10 %..80 %); it rejects and counts anything else (claims 1, 20).

  Scenario: A raised reserve holds on one branch, an out-of-bounds one is refused on the other
    Given the fleet two_branches
    And the server sets the reserve to 50% on branch 1 at 19:05
    And the server sets the reserve to 95% on branch 2 at 19:05
    When the fleet runs until 19:15
    Then every assembly on branch 1 reports 1 configuration message accepted
    And every assembly on branch 1 reports a reserve of 50%
    And every assembly on branch 2 reports 1 configuration message rejected as out of envelope
    And every assembly on branch 2 reports a reserve of 20%

  Scenario: Assemblies opted out before the event take no dispatch in it
    Given the fleet two_branches
    And the server opts branch 1 out of dispatch at 20:00
    When the fleet runs until 21:00
    Then every assembly on branch 1 reports 1 configuration message accepted
    And no assembly on branch 1 reports an accepted dispatch
    And the battery power of branch 1 averages at most 0.3 kW from 20:25 to 21:00
