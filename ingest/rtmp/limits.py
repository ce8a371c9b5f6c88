"""Caps that bound what a peer can make one connection allocate or compute."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection resource limits. Every one is checked before allocating."""

    #: Largest message accepted before a publish was accepted (commands only).
    max_message_size_before_publish: int = 64 * 1024
    #: Largest message accepted once publishing (a big keyframe fits).
    max_message_size: int = 16 * 1024 * 1024
    #: Bytes of all half-assembled messages together.
    max_partial_bytes: int = 32 * 1024 * 1024
    #: Smallest Set Chunk Size accepted: tiny chunks only multiply per-byte work, and no
    #: encoder goes below the protocol's default of 128.
    min_chunk_size: int = 64
    #: Chunk stream ids that may be in use at once.
    max_chunk_streams: int = 64
    #: Nesting depth of AMF0 objects/arrays.
    max_amf_depth: int = 16
    #: Values (object properties, array items) decoded from one AMF0 command.
    max_amf_items: int = 4096
    #: Received bytes not yet parsed (what a stalled consumer lets pile up).
    max_unparsed_bytes: int = 16 * 1024 * 1024 + 64 * 1024
    #: Seconds for the whole handshake (C0 to C2).
    handshake_timeout: float = 10.0
    #: Seconds from the connection's start until a publish is accepted (handshake,
    #: commands and the key check together), however the peer paces its bytes.
    publish_timeout: float = 20.0
