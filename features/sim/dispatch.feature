@sim @cluster
Feature: Signed dispatch on the branch
  The remote server manages the branch's assemblies as one resource by
  signed dispatch. The assembly follows dispatch addressed to its branch
  and never acts on forged, replayed, expired or other-branch commands
  (claims 1, 20). Verdicts are what the server received; behaviour is
  what the probe measured.

  Scenario: A signed dispatch for this branch is followed and ends on time
    Given a terrace house with a 5 kWh LFP battery assembly at 80% charge
    And the assembly takes part in dispatch on branch 42
    When the day runs until 22:00
    And the remote server dispatches branch 42 to discharge at 1500 W for 30 minutes
    And 40 minutes pass
    Then the remote server receives a dispatch verdict accepting it within 1 second
    And the battery power is at least 200 W at 22:15
    And the battery power stays between -50 and 50 W from 22:32 to 22:40

  Scenario: A forged dispatch is rejected and changes nothing
    Given a terrace house with a 5 kWh LFP battery assembly at 80% charge
    And the assembly takes part in dispatch on branch 42
    When the day runs until 22:00
    And a forged dispatch asks branch 42 to discharge at 1500 W for 30 minutes
    And 20 minutes pass
    Then the remote server receives a dispatch verdict rejecting it because bad signature within 1 second
    And the battery power stays within 1 W of the run without the event since then

  Scenario: A replayed dispatch is rejected and changes nothing
    Given a terrace house with a 5 kWh LFP battery assembly at 80% charge
    And the assembly takes part in dispatch on branch 42
    When the day runs until 22:00
    And the remote server dispatches branch 42 to discharge at 1500 W for 30 minutes
    And 2 minutes pass
    And the remote server cancels the dispatch on branch 42
    And 1 minute passes
    And the remote server's first dispatch is replayed
    And 10 minutes pass
    Then the remote server receives a dispatch verdict rejecting it because replayed within 1 second
    And the battery power stays within 1 W of the run without the event since then

  Scenario: An expired dispatch is rejected and changes nothing
    Given a terrace house with a 5 kWh LFP battery assembly at 80% charge
    And the assembly takes part in dispatch on branch 42
    When the day runs until 22:00
    And an expired dispatch asks branch 42 to discharge at 1500 W for 30 minutes
    And 20 minutes pass
    Then the remote server receives a dispatch verdict rejecting it because expired within 1 second
    And the battery power stays within 1 W of the run without the event since then

  Scenario: A dispatch for another branch is ignored and changes nothing
    Given a terrace house with a 5 kWh LFP battery assembly at 80% charge
    And the assembly takes part in dispatch on branch 42
    When the day runs until 22:00
    And the remote server dispatches branch 41 to discharge at 1500 W for 30 minutes
    And 20 minutes pass
    Then the remote server receives a dispatch verdict ignoring it because other branch within 1 second
    And the battery power stays within 1 W of the run without the event since then
