//! The HEP registries as data: chunk types, vendor ids and payload (protocol) types.
//!
//! Every value is an integer newtype with named constants, so an unknown value still
//! parses, compares and prints (as a number). Names follow HEP3 specification rev 37.

use core::fmt;

/// Declares a newtype over an integer with named constants and a name table.
macro_rules! registry {
    (
        $(#[$meta:meta])*
        $name:ident($int:ty), $fmt:literal {
            $( $(#[$cmeta:meta])* $konst:ident = $val:expr, $label:literal; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $int);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: Self = Self($val); )*

            /// Every value this registry names, in numeric order.
            pub const KNOWN: &'static [Self] = &[ $( Self::$konst, )* ];

            /// The registry's name for this value, `None` when it is not a known value.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some($label), )*
                    _ => None,
                }
            }
        }

        impl From<$int> for $name {
            fn from(v: $int) -> Self {
                Self(v)
            }
        }

        impl From<$name> for $int {
            fn from(v: $name) -> $int {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{}({})", n, self.0),
                    None => write!(f, $fmt, self.0),
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

registry! {
    /// A chunk type id (the second u16 of a chunk header). Generic types are those of
    /// vendor 0x0000; heplify-server ignores the vendor and reads every chunk as generic.
    ChunkType(u16), "0x{:04x}" {
        /// IP protocol family, 1 byte: 2 = IPv4, 10 = IPv6.
        IP_FAMILY = 0x0001, "ip_family";
        /// IP protocol id, 1 byte: 6 TCP, 17 UDP, 132 SCTP.
        IP_PROTO = 0x0002, "ip_proto";
        /// IPv4 source address, 4 bytes.
        IPV4_SRC = 0x0003, "ipv4_src";
        /// IPv4 destination address, 4 bytes.
        IPV4_DST = 0x0004, "ipv4_dst";
        /// IPv6 source address, 16 bytes.
        IPV6_SRC = 0x0005, "ipv6_src";
        /// IPv6 destination address, 16 bytes.
        IPV6_DST = 0x0006, "ipv6_dst";
        /// Source port, u16.
        SRC_PORT = 0x0007, "src_port";
        /// Destination port, u16.
        DST_PORT = 0x0008, "dst_port";
        /// Timestamp, Unix seconds, u32.
        TS_SEC = 0x0009, "ts_sec";
        /// Timestamp, microseconds offset, u32.
        TS_USEC = 0x000a, "ts_usec";
        /// Protocol (payload) type, 1 byte; see [`ProtoType`].
        PROTO_TYPE = 0x000b, "proto_type";
        /// Capture agent id, u32.
        CAPTURE_ID = 0x000c, "capture_id";
        /// Keep-alive timer in seconds, u16.
        KEEP_ALIVE = 0x000d, "keep_alive";
        /// Authentication key, octets (stored in clear by heplify-server, never checked).
        AUTH_KEY = 0x000e, "auth_key";
        /// Captured payload, octets.
        PAYLOAD = 0x000f, "payload";
        /// Compressed payload (ignored by heplify-server).
        COMPRESSED_PAYLOAD = 0x0010, "compressed_payload";
        /// Internal correlation id, octets; heplify-server's `sid` for non-SIP rows.
        CORRELATION_ID = 0x0011, "correlation_id";
        /// VLAN id, u16.
        VLAN = 0x0012, "vlan";
        /// Capture node name, octets.
        NODE_NAME = 0x0013, "node_name";
        /// Source MAC, 8 bytes.
        SRC_MAC = 0x0014, "src_mac";
        /// Destination MAC, 8 bytes.
        DST_MAC = 0x0015, "dst_mac";
        /// Ethernet type, u16.
        ETHERNET_TYPE = 0x0016, "ethernet_type";
        /// TCP flags, 1 byte.
        TCP_FLAGS = 0x0017, "tcp_flags";
        /// IP TOS, 1 byte.
        IP_TOS = 0x0018, "ip_tos";
        /// Reserved.
        RESERVED_19 = 0x0019, "reserved_0x19";
        /// Reserved.
        RESERVED_1A = 0x001a, "reserved_0x1a";
        /// Reserved.
        RESERVED_1B = 0x001b, "reserved_0x1b";
        /// Reserved.
        RESERVED_1C = 0x001c, "reserved_0x1c";
        /// Reserved.
        RESERVED_1D = 0x001d, "reserved_0x1d";
        /// Reserved.
        RESERVED_1E = 0x001e, "reserved_0x1e";
        /// Reserved.
        RESERVED_1F = 0x001f, "reserved_0x1f";
        /// MOS value, u16.
        MOS = 0x0020, "mos";
        /// R-factor, u16.
        R_FACTOR = 0x0021, "r_factor";
        /// GEO location, octets.
        GEO_LOCATION = 0x0022, "geo_location";
        /// Jitter, u32.
        JITTER = 0x0023, "jitter";
        /// Transaction type ("call", "registration"), octets.
        TRANSACTION_TYPE = 0x0024, "transaction_type";
        /// Payload JSON keys, octets.
        PAYLOAD_JSON_KEYS = 0x0025, "payload_json_keys";
        /// Tags values, octets.
        TAGS_VALUES = 0x0026, "tags_values";
        /// Type of tag, u16.
        TAG_TYPE = 0x0027, "tag_type";
        /// Event type (1 recording, 2 recording-LI), u16.
        EVENT_TYPE = 0x0028, "event_type";
        /// Group id, octets.
        GROUP_ID = 0x0029, "group_id";
    }
}

impl ChunkType {
    /// The exact body size heplify-server enforces for this type id (whatever the
    /// vendor), or `None` when it accepts any size. A packet with a chunk of another
    /// size is dropped whole.
    pub const fn hs_fixed_body_len(self) -> Option<usize> {
        match self.0 {
            0x0001 | 0x0002 | 0x000b => Some(1),
            0x0007 | 0x0008 | 0x0012 => Some(2),
            0x0003 | 0x0004 | 0x0009 | 0x000a | 0x000c => Some(4),
            0x0005 | 0x0006 => Some(16),
            _ => None,
        }
    }

    /// Whether this id lies in the generic range that rev 37 assigns (0x0001–0x0029).
    pub const fn is_generic_range(self) -> bool {
        self.0 >= 0x0001 && self.0 <= 0x0029
    }
}

registry! {
    /// A vendor id (the first u16 of a chunk header).
    VendorId(u16), "vendor 0x{:04x}" {
        /// Generic chunks.
        GENERIC = 0x0000, "generic";
        /// FreeSWITCH.
        FREESWITCH = 0x0001, "freeswitch";
        /// Kamailio / SER.
        KAMAILIO = 0x0002, "kamailio";
        /// OpenSIPS.
        OPENSIPS = 0x0003, "opensips";
        /// Asterisk.
        ASTERISK = 0x0004, "asterisk";
        /// The Homer project.
        HOMER = 0x0005, "homer";
        /// SipXecs.
        SIPXECS = 0x0006, "sipxecs";
        /// Yeti Switch.
        YETI = 0x0007, "yeti";
        /// Genesys.
        GENESYS = 0x0008, "genesys";
    }
}

registry! {
    /// A protocol (payload) type, the one-byte body of chunk 0x000b. heplify-server stores
    /// types 1, 5, 54 and 100 in their own tables and every other type ≥ 2 in
    /// `hep_proto_35_default`; type 0 is silently dropped.
    ProtoType(u8), "{}" {
        /// Reserved; heplify-server drops such packets.
        RESERVED = 0, "reserved";
        /// SIP.
        SIP = 1, "SIP";
        /// XMPP.
        XMPP = 2, "XMPP";
        /// SDP.
        SDP = 3, "SDP";
        /// RTP.
        RTP = 4, "RTP";
        /// RTCP as JSON.
        RTCP_JSON = 5, "RTCP";
        /// MGCP.
        MGCP = 6, "MGCP";
        /// MEGACO (H.248).
        MEGACO = 7, "MEGACO";
        /// M2UA.
        M2UA = 8, "M2UA";
        /// M3UA.
        M3UA = 9, "M3UA";
        /// IAX.
        IAX = 10, "IAX";
        /// H.322.
        H3222 = 11, "H3222";
        /// H.321.
        H321 = 12, "H321";
        /// M2PA.
        M2PA = 13, "M2PA";
        /// "JSON/webRTC" (hep.lua only).
        JSON_WEBRTC = 20, "JSON/webRTC";
        /// JSON QoS reports.
        QOS_JSON = 32, "QOS";
        /// MOS full report / RTP agent JSON.
        MOS_FULL = 34, "RTP-FULL";
        /// MOS short report / RTCP-XR.
        MOS_SHORT = 35, "RTCP-XR";
        /// Horaclifix JSON.
        HORACLIFIX = 38, "HORACLIFIX";
        /// SIP as JSON.
        SIP_JSON = 50, "SIP-JSON";
        /// DNS as JSON (heplify-server never creates its table).
        DNS_JSON = 53, "DNS";
        /// M3UA / ISUP as JSON.
        ISUP_JSON = 54, "ISUP";
        /// RTSP.
        RTSP = 55, "RTSP";
        /// Diameter.
        DIAMETER = 56, "DIAMETER";
        /// GSM MAP.
        GSM_MAP = 57, "GSM-MAP";
        /// RTCP from Pion.
        RTCP_PION = 58, "RTCP-PION";
        /// CDR.
        CDR = 60, "CDR";
        /// Verto.
        VERTO = 61, "VERTO";
        /// "JSON/QOS/99" custom QoS.
        QOS_99 = 99, "QOS99";
        /// Log lines (free text or JSON); heplify-server table `hep_proto_100_default`.
        LOG = 100, "LOG";
    }
}

/// IP protocol family values of chunk 0x0001.
pub mod family {
    /// IPv4.
    pub const IPV4: u8 = 2;
    /// IPv6.
    pub const IPV6: u8 = 10;
}

/// IP protocol id values of chunk 0x0002.
pub mod ip_proto {
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generic_chunk_type_of_rev37_is_named() {
        for id in 0x0001u16..=0x0029 {
            assert!(ChunkType(id).name().is_some(), "0x{id:04x} has no name");
        }
        assert_eq!(ChunkType::KNOWN.len(), 0x29);
        assert_eq!(ChunkType(0x0030).name(), None);
    }

    #[test]
    fn unknown_values_print_as_numbers() {
        assert_eq!(ChunkType(0x1234).to_string(), "0x1234");
        assert_eq!(ChunkType::CORRELATION_ID.to_string(), "correlation_id(17)");
        assert_eq!(ProtoType(77).to_string(), "77");
        assert_eq!(ProtoType::LOG.to_string(), "LOG(100)");
        assert_eq!(VendorId(0x99).to_string(), "vendor 0x0099");
    }

    #[test]
    fn fixed_sizes_match_heplify_server() {
        let one = [0x01, 0x02, 0x0b];
        let two = [0x07, 0x08, 0x12];
        let four = [0x03, 0x04, 0x09, 0x0a, 0x0c];
        let sixteen = [0x05, 0x06];
        for id in 0u16..=0xffff {
            let want = if one.contains(&id) {
                Some(1)
            } else if two.contains(&id) {
                Some(2)
            } else if four.contains(&id) {
                Some(4)
            } else if sixteen.contains(&id) {
                Some(16)
            } else {
                None
            };
            assert_eq!(ChunkType(id).hs_fixed_body_len(), want, "0x{id:04x}");
        }
    }
}
