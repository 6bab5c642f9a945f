"""Sans-IO QPACK (RFC 9204): field compression for HTTP/3.

Import the namespace (``from trio_zttp import qpack``) and use :class:`qpack.Encoder` and
:class:`qpack.Decoder`.  Their API follows pylsqpack's, so an HTTP/3 layer written against
one works with the other::

    encoder = qpack.Encoder()
    encoder_stream = encoder.apply_settings(max_table_capacity=4096, blocked_streams=16)
    more_encoder_stream, section = encoder.encode(0, [(b":method", b"GET"), ...])

    decoder = qpack.Decoder(max_table_capacity=4096, blocked_streams=16)
    unblocked = decoder.feed_encoder(encoder_stream + more_encoder_stream)
    decoder_stream, headers = decoder.feed_header(0, section)
    encoder.feed_decoder(decoder_stream)

Errors a peer can cause derive from :class:`QpackError` and carry the HTTP/3 wire code.
"""

from ._decoder import Decoder as Decoder
from ._encoder import Encoder as Encoder
from ._errors import DecoderStreamError as DecoderStreamError
from ._errors import DecompressionFailed as DecompressionFailed
from ._errors import EncoderStreamError as EncoderStreamError
from ._errors import ErrorCode as ErrorCode
from ._errors import FieldSectionTooLargeError as FieldSectionTooLargeError
from ._errors import QpackError as QpackError
from ._errors import StreamBlocked as StreamBlocked

__all__ = [
    "Decoder",
    "DecoderStreamError",
    "DecompressionFailed",
    "Encoder",
    "EncoderStreamError",
    "ErrorCode",
    "FieldSectionTooLargeError",
    "QpackError",
    "StreamBlocked",
]
