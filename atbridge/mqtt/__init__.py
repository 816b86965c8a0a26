"""MQTT 3.1.1 and 5.0 on the host: packets, codec and stream decoder, with no I/O.

atbridge builds every MQTT byte on the host and pushes it through a modem socket.
A broker does not explain a malformed packet, it closes the connection, and over a
cellular link that costs minutes; so this package checks everything it can *before*
a byte leaves, and says which spec statement was broken. Nothing here does I/O (no
sockets, no asyncio, no serial): bytes come in as arguments, bytes and packets go out.

The modules, bottom up:

- :mod:`~atbridge.mqtt.wire`: packet types, protocol levels, and the data
  representations of the spec (Variable Byte Integer, UTF-8 string, binary data,
  the fixed header).
- :mod:`~atbridge.mqtt.properties`: MQTT 5.0 properties and reason codes, as tables.
- :mod:`~atbridge.mqtt.packets`: one frozen dataclass per control packet, and the
  topic name and filter rules shared by the encoder and the decoder.
- :mod:`~atbridge.mqtt.codec`: ``encode`` and ``decode``, the plain reference codec
  for every packet, with the fast paths of :mod:`~atbridge.mqtt.fast` in front.
- :mod:`~atbridge.mqtt.fast`: the PUBLISH and CONNECT fast paths, which either return
  exactly what the reference codec would, or decline and leave the work to it.
- :mod:`~atbridge.mqtt.stream`: :class:`~atbridge.mqtt.stream.PacketDecoder`, bytes
  in whatever chunks the modem delivers them, whole packets out.

The client session that rides on these, :class:`~atbridge.at_mqtt.MqttSession`,
lives in :mod:`atbridge.at_mqtt`, which also re-exports the names users need.
"""
