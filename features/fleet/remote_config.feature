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

  # Measured in the packs, not as reported. The clean controller keeps
  # the branch's lowest pack at or above 43.9 % (from 68.6 % at 19:10,
  # the fleet file's seeds; without the raised reserve it reaches 43.4 %), a
  # controller that ignores the reserve (`ignores-reserve-config`) drains
  # it to 29.1 %. The 50 % the server set is not held in the packs: see
  # the @known-gap scenario below.
  Scenario: A raised reserve keeps the packs from being drained through the evening
    Given the fleet two_branches
    And the server sets the reserve to 50% on branch 1 at 19:05
    When the fleet runs until 22:00
    Then every assembly on branch 1 reports a reserve of 50%
    And no pack on branch 1 is discharged below 40% from 19:10 to 22:00

  # Known gap: the lowest pack falls to 43.9 % (below 48 % from 20:26),
  # although every assembly reports the 50 % reserve in force. Not yet
  # traced: the assemblies' state-of-charge estimate of their LFP packs
  # versus the packs' own, or discharge the reserve does not bound.
  @known-gap
  Scenario: A raised reserve is held in the packs within two points
    Given the fleet two_branches
    And the server sets the reserve to 50% on branch 1 at 19:05
    When the fleet runs until 22:00
    Then no pack on branch 1 is discharged below 48% from 19:10 to 22:00

  Scenario: Assemblies opted out before the event take no dispatch in it
    Given the fleet two_branches
    And the server opts branch 1 out of dispatch at 20:00
    When the fleet runs until 21:00
    Then every assembly on branch 1 reports 1 configuration message accepted
    And no assembly on branch 1 reports an accepted dispatch
    And the battery power of branch 1 averages at most 0.3 kW from 20:25 to 21:00
