"""The trio layer: endpoints, connections and streams over the sans-IO QUIC core.

Private: the public names are re-exported from :mod:`trio_zttp`.  Modules:
``endpoint`` (UDP demultiplexing, server admission, ``open_quic_endpoint``, ``serve_quic``),
``connection`` (one driver task per connection), ``stream`` (trio streams over QUIC streams),
``errors``, ``_udp`` (datagram I/O paths), ``_engine`` (the sans-IO contract the layer drives)
and ``_groups`` (exception-group policy at public context-manager boundaries).
"""
