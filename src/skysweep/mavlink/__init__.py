"""MAVLink 2: skysweep as a ground station for PX4 and ArduPilot fleets
(:class:`~skysweep.mavlink.link.MavlinkLink`), and the simulator served as MAVLink vehicles
(:mod:`skysweep.mavlink.vehicles`).

Framing, CRC and signing are pymavlink's; this package adds what a fleet needs on top: routing
by (link, system id), the mission and command protocols with timeouts and retries, the actuator
allowlist, and a telemetry table fast enough for thousands of vehicles.
"""
