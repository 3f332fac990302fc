//! Writing HEP packets into a classic pcap file as UDP datagrams or TCP segments
//! (Ethernet framing), so `heplink decode`, tshark or Wireshark can read them.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use etherparse::PacketBuilder;

/// Microsecond-resolution classic pcap, Ethernet link type.
pub struct PcapWriter<W: Write> {
    out: W,
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&262_144u32.to_le_bytes())?;
        out.write_all(&1u32.to_le_bytes())?; // LINKTYPE_ETHERNET
        Ok(PcapWriter { out })
    }

    fn record(&mut self, ts_micros: u64, frame: &[u8]) -> io::Result<()> {
        self.out
            .write_all(&((ts_micros / 1_000_000) as u32).to_le_bytes())?;
        self.out
            .write_all(&((ts_micros % 1_000_000) as u32).to_le_bytes())?;
        let len = frame.len() as u32;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(frame)
    }

    /// Writes one UDP datagram from `src` to `dst` (same address family).
    pub fn udp(
        &mut self,
        ts_micros: u64,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> io::Result<()> {
        let b = ip_builder(src.ip(), dst.ip())?.udp(src.port(), dst.port());
        let mut frame = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut frame, payload).map_err(io::Error::other)?;
        self.record(ts_micros, &frame)
    }

    /// Writes one TCP segment (`syn` for a connection's first segment, else ACK+PSH).
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        &mut self,
        ts_micros: u64,
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        syn: bool,
        payload: &[u8],
    ) -> io::Result<()> {
        let b = ip_builder(src.ip(), dst.ip())?.tcp(src.port(), dst.port(), seq, 65_535);
        let b = if syn { b.syn() } else { b.ack(1).psh() };
        let mut frame = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut frame, payload).map_err(io::Error::other)?;
        self.record(ts_micros, &frame)
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn ip_builder(
    src: IpAddr,
    dst: IpAddr,
) -> io::Result<etherparse::PacketBuilderStep<etherparse::IpHeaders>> {
    let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Ok(eth.ipv4(s.octets(), d.octets(), 64)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Ok(eth.ipv6(s.octets(), d.octets(), 64)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "mixed IPv4/IPv6 endpoints",
        )),
    }
}
