"""Sans-IO HTTP/3 (RFC 9114) with extended CONNECT (RFC 9220) and HTTP Datagrams (RFC 9297).

The public names are re-exported here from private modules; import the namespace
(``from trio_zttp import h3``) and use ``h3.ErrorCode``, ``h3.Settings`` ...  The parsers and
validators that raise the core's private ``H3Error`` family (frame and capsule parsers, field
validation) live in the private modules, for the connection to use and catch at its boundary.
"""

from ._capsules import CapsuleType as CapsuleType
from ._capsules import capsule_protocol_field as capsule_protocol_field
from ._capsules import encode_capsule as encode_capsule
from ._capsules import encode_h3_datagram as encode_h3_datagram
from ._capsules import grease_capsule_type as grease_capsule_type
from ._capsules import is_reserved_capsule_type as is_reserved_capsule_type
from ._capsules import parse_capsule_protocol as parse_capsule_protocol
from ._errors import ErrorCode as ErrorCode
from ._errors import grease_error_code as grease_error_code
from ._errors import is_reserved_code as is_reserved_code
from ._frames import FrameType as FrameType
from ._frames import StreamType as StreamType
from ._frames import encode_frame as encode_frame
from ._frames import grease_frame_type as grease_frame_type
from ._frames import grease_stream_type as grease_stream_type
from ._frames import is_reserved_frame_type as is_reserved_frame_type
from ._frames import is_reserved_stream_type as is_reserved_stream_type
from ._headers import Headers as Headers
from ._headers import build_request_headers as build_request_headers
from ._headers import build_response_headers as build_response_headers
from ._settings import Settings as Settings
from ._settings import SettingsId as SettingsId
from ._settings import encode_settings as encode_settings
from ._settings import grease_setting_id as grease_setting_id

# isort: split
# the connection and its events (h3 connection helper's block)
from ._connection import DEFAULT_SETTINGS as DEFAULT_SETTINGS
from ._connection import Connection as Connection
from ._events import CapsuleReceived as CapsuleReceived
from ._events import ConnectionTerminated as ConnectionTerminated
from ._events import DatagramReceived as DatagramReceived
from ._events import DataReceived as DataReceived
from ._events import Event as Event
from ._events import GoawayReceived as GoawayReceived
from ._events import HeadersReceived as HeadersReceived
from ._events import SettingsReceived as SettingsReceived
from ._events import StopSendingReceived as StopSendingReceived
from ._events import StreamReset as StreamReset
from ._events import TrailersReceived as TrailersReceived
from ._quic import QuicTransport as QuicTransport
from ._stream import StateError as StateError

__all__ = [
    "CapsuleType",
    "ErrorCode",
    "FrameType",
    "Headers",
    "Settings",
    "SettingsId",
    "StreamType",
    "build_request_headers",
    "build_response_headers",
    "capsule_protocol_field",
    "encode_capsule",
    "encode_frame",
    "encode_h3_datagram",
    "encode_settings",
    "grease_capsule_type",
    "grease_error_code",
    "grease_frame_type",
    "grease_setting_id",
    "grease_stream_type",
    "is_reserved_capsule_type",
    "is_reserved_code",
    "is_reserved_frame_type",
    "is_reserved_stream_type",
    "parse_capsule_protocol",
]

# the connection and its events (h3 connection helper's block)
__all__ += [
    "DEFAULT_SETTINGS",
    "CapsuleReceived",
    "Connection",
    "ConnectionTerminated",
    "DataReceived",
    "DatagramReceived",
    "Event",
    "GoawayReceived",
    "HeadersReceived",
    "QuicTransport",
    "SettingsReceived",
    "StateError",
    "StopSendingReceived",
    "StreamReset",
    "TrailersReceived",
]
