@sim @devices
Feature: End devices on USB-PD sockets
  The controller sees what is plugged in, reports its load, and puts
  unused devices and idle peripherals in standby (claims 15–19).

  Scenario: A laptop plugged in draws power from its socket
    Given a terrace house with a 5 kWh LFP battery assembly at 60% charge
    When the day runs until 20:00
    And the laptop is plugged into the desk-left socket
    And 5 minutes pass
    Then the desk-left socket power settles above 5 W within 2 minutes
