@fleet
Feature: Assemblies fall back to local operation when the server is silent
  The server signs a heartbeat to every branch each minute. When it goes
  silent, each assembly counts it silent after `server_silence_s` (180 s),
  withdraws from the dispatch in force and returns to its own local
  operation; when the server returns, the branch is managed again.

  Scenario: The server goes silent in the middle of the event, then returns
    Given the fleet two_branches
    And the server is silent from 20:45 to 21:15
    When the fleet runs until 22:00
    Then 0 assemblies on branch 1 report the server silent at 20:44
    And 13 assemblies on branch 1 report the server silent at 20:50
    And 0 assemblies on branch 1 report the server silent at 21:30
    And the battery power of branch 1 averages at least 2 kW from 20:25 to 20:45
    And the battery power of branch 1 averages at most 0.3 kW from 20:50 to 21:15
    And the transformer power of branch 1 averages at least 8.5 kW from 20:50 to 21:15
    And the transformer power of branch 1 is at most 8 kW in at least 80% of the minutes from 21:25 to 21:45
