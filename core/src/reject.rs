//! Why input was rejected: one typed reason from where it is found (the body splitter,
//! the event parser, the HTTP and WebSocket inputs, the brokers) to the counter
//! (`heplink_rejected_total{reason}`), the log line and the 400 answer's list.

/// Why input was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reject {
    /// An event that is not valid JSON, or has fields of the wrong type.
    MalformedJson = 0,
    /// An event without `type`.
    NoType,
    /// A piece of a body that is not an event object.
    NotAnEvent,
    /// Wrong or missing Basic auth.
    Unauthorized,
    /// A body over `max_body_bytes`.
    BodyTooLarge,
    /// A body over `max_decompressed_bytes` once gunzipped.
    DecompressedTooLarge,
    /// A body that is not valid gzip.
    BadGzip,
    /// A `Content-Encoding` other than gzip / identity.
    UnsupportedEncoding,
    /// A WebSocket message over `max_message_bytes`, or binary garbage.
    BadWsMessage,
    /// A method other than POST on the HTTP input.
    MethodNotAllowed,
    /// A connection closed for being too slow or idle too long.
    Timeout,
    /// A connection refused: too many open (in all or from its address).
    TooManyConnections,
    /// A request refused: the input's budget of body bytes in flight is spent.
    Overloaded,
    /// Events beyond the most one body may hold.
    TooManyEvents,
    /// A WebSocket message over `max_message_bytes`.
    WsMessageTooLarge,
}

/// How many reasons [`Reject`] has.
pub const REJECTS: usize = 15;

/// The `reason` labels, in the order of [`Reject`].
pub const LABELS: [&str; REJECTS] = [
    "malformed_json",
    "no_type",
    "not_an_event",
    "unauthorized",
    "body_too_large",
    "decompressed_too_large",
    "bad_gzip",
    "unsupported_encoding",
    "bad_ws_message",
    "method_not_allowed",
    "timeout",
    "too_many_connections",
    "overloaded",
    "too_many_events",
    "ws_message_too_large",
];

impl Reject {
    /// The `reason` label.
    pub fn label(self) -> &'static str {
        LABELS[self as usize]
    }
}
