//! DNS messages (RFC 1035): just enough to read a question and write an answer.
//!
//! Wire layout reminders: a 12-byte header (id, flags, four section counts), then the
//! question section (name, type, class), then answer, authority and additional records
//! (name, type, class, TTL, data length, data). Names are length-prefixed labels ended
//! by a zero byte, or ended by a compression pointer (two bytes, top bits `11`) to an
//! earlier name in the message.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A malformed message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed DNS message: {0}")]
pub struct FormatError(pub &'static str);

/// Record types Pier answers itself.
pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;

/// The Internet class, and the "any class" query class.
pub const CLASS_IN: u16 = 1;
pub const CLASS_ANY: u16 = 255;

/// Response codes.
pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;

/// The TTL of the records Pier answers itself (Docker's value).
pub const ANSWER_TTL: u32 = 600;

/// Size of the fixed header.
pub const HEADER_LEN: usize = 12;

/// The largest message a plain (non-EDNS) UDP client accepts.
pub const MAX_UDP_LEN: usize = 512;

/// The largest message that fits TCP's 2-byte length prefix.
pub const MAX_TCP_LEN: usize = 65535;

/// Header flag bits (in the 16-bit flags word).
const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const OPCODE_SHIFT: u16 = 11;
const OPCODE_MASK: u16 = 0x0F;

/// A compression pointer to offset 12: the question's name, right after the header.
const POINTER_TO_QUESTION: [u8; 2] = [0xC0, 0x0C];

/// Longest name on the wire (length bytes and final zero included).
const MAX_NAME_LEN: usize = 255;
/// Longest label.
const MAX_LABEL_LEN: usize = 63;
/// Bound on the compression pointers followed while reading one name.
const MAX_POINTERS: usize = 64;

/// The first question of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    /// Lower-case, without the trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Whether the client asked for recursion (echoed back).
    pub recursion_desired: bool,
}

/// The fixed header of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    /// The raw flags word (QR, opcode, AA, TC, RD, RA, Z, rcode).
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    /// Reads the 12-byte header at the start of `packet`.
    pub fn parse(packet: &[u8]) -> Result<Header, FormatError> {
        if packet.len() < HEADER_LEN {
            return Err(FormatError("shorter than a header"));
        }
        let word = |i: usize| u16::from_be_bytes([packet[i], packet[i + 1]]);
        Ok(Header {
            id: word(0),
            flags: word(2),
            qdcount: word(4),
            ancount: word(6),
            nscount: word(8),
            arcount: word(10),
        })
    }

    /// Whether this is a response (QR set).
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }

    /// The operation code (0: standard query).
    pub fn opcode(&self) -> u8 {
        ((self.flags >> OPCODE_SHIFT) & OPCODE_MASK) as u8
    }

    /// Authoritative answer.
    pub fn authoritative(&self) -> bool {
        self.flags & FLAG_AA != 0
    }

    /// Truncated.
    pub fn truncated(&self) -> bool {
        self.flags & FLAG_TC != 0
    }

    /// Recursion desired.
    pub fn recursion_desired(&self) -> bool {
        self.flags & FLAG_RD != 0
    }

    /// Recursion available.
    pub fn recursion_available(&self) -> bool {
        self.flags & FLAG_RA != 0
    }

    /// The response code (low 4 bits).
    pub fn rcode(&self) -> u8 {
        (self.flags & 0x000F) as u8
    }

    fn write(&self, out: &mut Vec<u8>) {
        for word in [
            self.id,
            self.flags,
            self.qdcount,
            self.ancount,
            self.nscount,
            self.arcount,
        ] {
            out.extend_from_slice(&word.to_be_bytes());
        }
    }
}

/// A query's first question, with its name as it came on the wire (original case,
/// uncompressed) so that answers echo it exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub header: Header,
    pub question: Question,
    /// The question name, uncompressed wire form (labels, then the zero byte).
    wire_name: Vec<u8>,
}

/// The data of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// A domain name (without the trailing dot).
    Ptr(String),
    /// Any other type, kept raw.
    Other(u16, Vec<u8>),
}

impl RData {
    /// The record type.
    pub fn rtype(&self) -> u16 {
        match self {
            RData::A(_) => TYPE_A,
            RData::Aaaa(_) => TYPE_AAAA,
            RData::Ptr(_) => TYPE_PTR,
            RData::Other(t, _) => *t,
        }
    }

    /// The wire form of the data (`None`: a PTR name that cannot be encoded).
    fn encode(&self) -> Option<Vec<u8>> {
        match self {
            RData::A(ip) => Some(ip.octets().to_vec()),
            RData::Aaaa(ip) => Some(ip.octets().to_vec()),
            RData::Ptr(name) => encode_name(name).ok(),
            RData::Other(_, data) => Some(data.clone()),
        }
    }
}

/// A resource record as read back from a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Lower-case, without the trailing dot.
    pub name: String,
    pub class: u16,
    pub ttl: u32,
    pub data: RData,
}

/// A whole message as read back (questions and answers; authority and additional
/// records are not decoded). Used by tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    /// Name (lower-case, no trailing dot), type, class.
    pub questions: Vec<(String, u16, u16)>,
    pub answers: Vec<Record>,
}

/// Reads the header and first question of `packet`.
pub fn parse_query(packet: &[u8]) -> Result<Question, FormatError> {
    Query::parse(packet).map(|q| q.question)
}

impl Query {
    /// Reads the header and first question of `packet`.
    pub fn parse(packet: &[u8]) -> Result<Query, FormatError> {
        let header = Header::parse(packet)?;
        if header.qdcount == 0 {
            return Err(FormatError("no question"));
        }
        let (name, wire_name, end) = read_name(packet, HEADER_LEN)?;
        let fixed = packet
            .get(end..end + 4)
            .ok_or(FormatError("question truncated"))?;
        let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
        Ok(Query {
            header,
            question: Question {
                id: header.id,
                name,
                qtype,
                qclass,
                recursion_desired: header.recursion_desired(),
            },
            wire_name,
        })
    }

    /// An answer to this query: RA set (AA not: Docker's embedded DNS answers as a
    /// recursive resolver, and clients print "Non-authoritative answer" for it), RD and
    /// the id echoed, the question
    /// echoed as asked, then `records` (owner: the question name, class IN, TTL
    /// [`ANSWER_TTL`]) as long as the message stays within `max_len` bytes; the records
    /// that do not fit are left out and TC is set. Records whose data cannot be encoded
    /// (a PTR name too long) are skipped.
    pub fn answer(&self, records: &[RData], max_len: usize) -> Vec<u8> {
        self.response(RCODE_NOERROR, false, records, max_len)
    }

    /// A response without records and with `rcode` (e.g. SERVFAIL), echoing the
    /// question; AA is not set.
    pub fn error(&self, rcode: u8) -> Vec<u8> {
        self.response(rcode, false, &[], MAX_TCP_LEN)
    }

    fn response(
        &self,
        rcode: u8,
        authoritative: bool,
        records: &[RData],
        max_len: usize,
    ) -> Vec<u8> {
        let mut flags = FLAG_QR | FLAG_RA | u16::from(rcode & 0x0F);
        if authoritative {
            flags |= FLAG_AA;
        }
        if self.question.recursion_desired {
            flags |= FLAG_RD;
        }
        let mut out = Vec::with_capacity(MAX_UDP_LEN);
        Header {
            id: self.header.id,
            flags,
            qdcount: 1,
            ancount: 0,
            nscount: 0,
            arcount: 0,
        }
        .write(&mut out);
        out.extend_from_slice(&self.wire_name);
        out.extend_from_slice(&self.question.qtype.to_be_bytes());
        out.extend_from_slice(&self.question.qclass.to_be_bytes());

        let mut count: u16 = 0;
        let mut truncated = false;
        for record in records {
            let Some(data) = record.encode() else {
                continue;
            };
            let Ok(data_len) = u16::try_from(data.len()) else {
                continue;
            };
            // Pointer (2) + type, class (4) + TTL (4) + length (2) + data.
            if out.len() + 12 + data.len() > max_len || count == u16::MAX {
                truncated = true;
                break;
            }
            out.extend_from_slice(&POINTER_TO_QUESTION);
            out.extend_from_slice(&record.rtype().to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&ANSWER_TTL.to_be_bytes());
            out.extend_from_slice(&data_len.to_be_bytes());
            out.extend_from_slice(&data);
            count += 1;
        }
        out[6..8].copy_from_slice(&count.to_be_bytes());
        if truncated {
            let flags = flags | FLAG_TC;
            out[2..4].copy_from_slice(&flags.to_be_bytes());
        }
        out
    }
}

/// A response to a message whose header could be read but not the rest: `rcode`
/// (FORMERR, NOTIMP...), the id, opcode and RD echoed, no sections. `None` when
/// `packet` has no readable header.
pub fn header_error(packet: &[u8], rcode: u8) -> Option<Vec<u8>> {
    let header = Header::parse(packet).ok()?;
    let flags = FLAG_QR
        | FLAG_RA
        | (header.flags & (OPCODE_MASK << OPCODE_SHIFT))
        | (header.flags & FLAG_RD)
        | u16::from(rcode & 0x0F);
    let mut out = Vec::with_capacity(HEADER_LEN);
    Header {
        id: header.id,
        flags,
        qdcount: 0,
        ancount: 0,
        nscount: 0,
        arcount: 0,
    }
    .write(&mut out);
    Some(out)
}

/// A standard query for `name` (RD set, one question of class IN).
pub fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    Header {
        id,
        flags: FLAG_RD,
        qdcount: 1,
        ancount: 0,
        nscount: 0,
        arcount: 0,
    }
    .write(&mut out);
    out.extend_from_slice(&encode_name(name)?);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// Reads a whole message: header, questions and answer records.
pub fn parse_message(packet: &[u8]) -> Result<Message, FormatError> {
    let header = Header::parse(packet)?;
    let mut pos = HEADER_LEN;
    let mut questions = Vec::with_capacity(usize::from(header.qdcount.min(16)));
    for _ in 0..header.qdcount {
        let (name, _, end) = read_name(packet, pos)?;
        let fixed = packet
            .get(end..end + 4)
            .ok_or(FormatError("question truncated"))?;
        questions.push((
            name,
            u16::from_be_bytes([fixed[0], fixed[1]]),
            u16::from_be_bytes([fixed[2], fixed[3]]),
        ));
        pos = end + 4;
    }
    let mut answers = Vec::with_capacity(usize::from(header.ancount.min(64)));
    for _ in 0..header.ancount {
        let (name, _, end) = read_name(packet, pos)?;
        let fixed = packet
            .get(end..end + 10)
            .ok_or(FormatError("record truncated"))?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let start = end + 10;
        let raw = packet
            .get(start..start + len)
            .ok_or(FormatError("record data truncated"))?;
        let data = match rtype {
            TYPE_A => {
                let octets: [u8; 4] = raw.try_into().map_err(|_| FormatError("bad A data"))?;
                RData::A(Ipv4Addr::from(octets))
            }
            TYPE_AAAA => {
                let octets: [u8; 16] = raw.try_into().map_err(|_| FormatError("bad AAAA data"))?;
                RData::Aaaa(Ipv6Addr::from(octets))
            }
            TYPE_PTR => {
                let (target, _, target_end) = read_name(packet, start)?;
                if target_end != start + len {
                    return Err(FormatError("bad PTR data"));
                }
                RData::Ptr(target)
            }
            other => RData::Other(other, raw.to_vec()),
        };
        answers.push(Record {
            name,
            class,
            ttl,
            data,
        });
        pos = start + len;
    }
    Ok(Message {
        header,
        questions,
        answers,
    })
}

/// Encodes a presentation-form name (`a.b.c`, an optional trailing dot; `""` or `"."`
/// is the root) as uncompressed labels ended by a zero byte. Accepts the `\.`, `\\`
/// and `\DDD` escapes that [`read_name`] produces.
pub fn encode_name(name: &str) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::with_capacity(name.len() + 2);
    let bytes = name.as_bytes();
    if !(bytes.is_empty() || bytes == b".") {
        let mut label: Vec<u8> = Vec::with_capacity(MAX_LABEL_LEN);
        let mut i = 0;
        loop {
            let end_of_label = i == bytes.len() || bytes[i] == b'.';
            if end_of_label {
                if label.is_empty() {
                    if i == bytes.len() && i > 0 && bytes[i - 1] == b'.' {
                        break; // trailing dot
                    }
                    return Err(FormatError("empty label"));
                }
                if label.len() > MAX_LABEL_LEN {
                    return Err(FormatError("label too long"));
                }
                out.push(label.len() as u8);
                out.append(&mut label);
                if i == bytes.len() {
                    break;
                }
                i += 1;
                if i == bytes.len() {
                    break; // trailing dot
                }
                continue;
            }
            if bytes[i] == b'\\' {
                let rest = &bytes[i + 1..];
                if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
                    let value = rest[..3]
                        .iter()
                        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
                    let value = u8::try_from(value).map_err(|_| FormatError("bad escape"))?;
                    label.push(value);
                    i += 4;
                } else if let Some(&c) = rest.first() {
                    label.push(c);
                    i += 2;
                } else {
                    return Err(FormatError("bad escape"));
                }
            } else {
                label.push(bytes[i]);
                i += 1;
            }
        }
    }
    out.push(0);
    if out.len() > MAX_NAME_LEN {
        return Err(FormatError("name too long"));
    }
    Ok(out)
}

/// Reads the name at `start` in `packet`, following compression pointers (each must
/// point before the previous one, so they cannot loop; their number is bounded too).
///
/// Returns the presentation form (lower-case ASCII, no trailing dot, bytes other than
/// letters, digits, `-`, `_` and `*` escaped as `\DDD`, `.` and `\` as `\.` and `\\`),
/// the uncompressed wire form in the original case, and the offset just after the
/// name where it started (after the first pointer if any).
fn read_name(packet: &[u8], start: usize) -> Result<(String, Vec<u8>, usize), FormatError> {
    let mut text = String::new();
    let mut wire = Vec::with_capacity(32);
    let mut pos = start;
    // Where the name ends in the message it started in: set at the first pointer.
    let mut end = None;
    // Pointers must go strictly backwards from here.
    let mut limit = start;
    let mut pointers = 0;
    loop {
        let len = *packet.get(pos).ok_or(FormatError("name truncated"))?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                wire.push(0);
                if wire.len() > MAX_NAME_LEN {
                    return Err(FormatError("name too long"));
                }
                return Ok((text, wire, end.unwrap_or(pos + 1)));
            }
            0x00 => {
                let len = usize::from(len);
                let label = packet
                    .get(pos + 1..pos + 1 + len)
                    .ok_or(FormatError("label truncated"))?;
                if wire.len() + 1 + len + 1 > MAX_NAME_LEN {
                    return Err(FormatError("name too long"));
                }
                wire.push(len as u8);
                wire.extend_from_slice(label);
                if !text.is_empty() {
                    text.push('.');
                }
                for &b in label {
                    push_escaped(&mut text, b);
                }
                pos += 1 + len;
            }
            0xC0 => {
                let low = *packet
                    .get(pos + 1)
                    .ok_or(FormatError("pointer truncated"))?;
                let target = usize::from(u16::from_be_bytes([len & 0x3F, low]));
                pointers += 1;
                if target >= limit || pointers > MAX_POINTERS {
                    return Err(FormatError("compression loop"));
                }
                if end.is_none() {
                    end = Some(pos + 2);
                }
                limit = target;
                pos = target;
            }
            _ => return Err(FormatError("unsupported label type")),
        }
    }
}

fn push_escaped(text: &mut String, b: u8) {
    match b {
        b'A'..=b'Z' => text.push(char::from(b.to_ascii_lowercase())),
        b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'*' => text.push(char::from(b)),
        b'.' => text.push_str("\\."),
        b'\\' => text.push_str("\\\\"),
        _ => {
            use std::fmt::Write;
            let _ = write!(text, "\\{b:03}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `Web.Example.` by hand.
    fn raw_query() -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(b"\x03Web\x07Example\x00");
        p.extend_from_slice(&[0, 1, 0, 1]);
        p
    }

    #[test]
    fn parses_a_plain_query() {
        let q = parse_query(&raw_query()).unwrap();
        assert_eq!(
            q,
            Question {
                id: 0x1234,
                name: "web.example".into(),
                qtype: TYPE_A,
                qclass: CLASS_IN,
                recursion_desired: true,
            }
        );
    }

    #[test]
    fn parses_root_and_no_rd() {
        let mut p = vec![0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[0, 2, 0, 1]);
        let q = parse_query(&p).unwrap();
        assert_eq!(q.name, "");
        assert_eq!(q.qtype, 2);
        assert!(!q.recursion_desired);
    }

    #[test]
    fn parses_compressed_names() {
        // A message whose answer owner is a pointer to the question, and a PTR whose
        // target is a label followed by a pointer into the question name.
        let mut p = vec![0xAB, 0xCD, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        p.extend_from_slice(b"\x03foo\x03bar\x00");
        p.extend_from_slice(&[0, 12, 0, 1]);
        // Answer 1: PTR, target "x" + pointer to "bar" (offset 16).
        p.extend_from_slice(&[0xC0, 0x0C, 0, 12, 0, 1, 0, 0, 0, 5, 0, 4]);
        p.extend_from_slice(&[1, b'x', 0xC0, 16]);
        // Answer 2: owner is a pointer to the pointer-terminated target above.
        let target = p.len() - 4;
        p.extend_from_slice(&[0xC0, target as u8, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
        p.extend_from_slice(&[10, 0, 0, 1]);
        let m = parse_message(&p).unwrap();
        assert_eq!(m.questions, vec![("foo.bar".to_string(), TYPE_PTR, 1)]);
        assert_eq!(m.answers.len(), 2);
        assert_eq!(m.answers[0].name, "foo.bar");
        assert_eq!(m.answers[0].data, RData::Ptr("x.bar".into()));
        assert_eq!(m.answers[1].name, "x.bar");
        assert_eq!(m.answers[1].data, RData::A(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn question_may_be_a_pointer_into_itself_only_backwards() {
        // The question name is a pointer to itself: a loop.
        let mut p = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 0x0C, 0, 1, 0, 1];
        assert_eq!(
            parse_query(&p).unwrap_err(),
            FormatError("compression loop")
        );
        // Forward pointer: refused as well.
        p[13] = 0x0E;
        assert!(parse_query(&p).is_err());
    }

    #[test]
    fn pointer_loops_are_refused() {
        // Two answer names pointing at each other.
        let mut p = vec![0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0];
        // Offset 12: pointer to 14; offset 14: pointer to 12.
        p.extend_from_slice(&[0xC0, 14, 0xC0, 12]);
        p.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 1, 2, 3, 4]);
        assert!(parse_message(&p).is_err());
    }

    #[test]
    fn bad_packets_are_refused() {
        let good = raw_query();
        // Short header.
        assert!(parse_query(&good[..11]).is_err());
        assert!(parse_query(&[]).is_err());
        // Every truncation of the question.
        for len in HEADER_LEN..good.len() {
            assert!(parse_query(&good[..len]).is_err(), "len {len}");
        }
        // No question.
        let mut p = good.clone();
        p[5] = 0;
        assert_eq!(parse_query(&p).unwrap_err(), FormatError("no question"));
        // Label length past the end.
        let mut p = good.clone();
        p[12] = 60;
        assert!(parse_query(&p).is_err());
        // Reserved label types.
        let mut p = good.clone();
        p[12] = 0x43;
        assert!(parse_query(&p).is_err());
        let mut p = good;
        p[12] = 0x83;
        assert!(parse_query(&p).is_err());
        // A name longer than 255 bytes.
        let mut p = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            p.push(60);
            p.extend_from_slice(&[b'a'; 60]);
        }
        p.push(0);
        p.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(parse_query(&p).unwrap_err(), FormatError("name too long"));
    }

    #[test]
    fn odd_bytes_are_escaped_and_round_trip() {
        let mut p = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(b"\x04a.\\\xff\x02Zz\x00\x00\x01\x00\x01");
        let q = Query::parse(&p).unwrap();
        assert_eq!(q.question.name, "a\\.\\\\\\255.zz");
        assert_eq!(
            encode_name(&q.question.name).unwrap(),
            b"\x04a.\\\xff\x02zz\x00"
        );
    }

    #[test]
    fn encodes_names() {
        assert_eq!(encode_name("").unwrap(), vec![0]);
        assert_eq!(encode_name(".").unwrap(), vec![0]);
        assert_eq!(encode_name("a.bc").unwrap(), b"\x01a\x02bc\x00");
        assert_eq!(encode_name("a.bc.").unwrap(), b"\x01a\x02bc\x00");
        assert!(encode_name("a..b").is_err());
        assert!(encode_name(".a").is_err());
        assert!(encode_name(&"x".repeat(64)).is_err());
        assert!(encode_name(&vec!["y".repeat(63); 4].join(".")).is_err());
        assert!(encode_name(
            &[
                "y".repeat(63),
                "y".repeat(63),
                "y".repeat(63),
                "y".repeat(61)
            ]
            .join(".")
        )
        .is_ok());
    }

    #[test]
    fn answer_round_trips() {
        let q = Query::parse(&raw_query()).unwrap();
        let records = vec![
            RData::A(Ipv4Addr::new(10, 1, 2, 3)),
            RData::Aaaa("fd00::1".parse().unwrap()),
            RData::Ptr("web.pier".into()),
        ];
        let out = q.answer(&records, MAX_UDP_LEN);
        // The answers point at the question name.
        let question_end = HEADER_LEN + b"\x03Web\x07Example\x00".len() + 4;
        assert_eq!(&out[question_end..question_end + 2], &[0xC0, 0x0C]);
        // The question is echoed as asked (case kept).
        assert_eq!(&out[HEADER_LEN..question_end], &raw_query()[HEADER_LEN..]);
        let m = parse_message(&out).unwrap();
        assert_eq!(m.header.id, 0x1234);
        assert!(m.header.is_response());
        assert!(!m.header.authoritative());
        assert!(m.header.recursion_available());
        assert!(m.header.recursion_desired());
        assert!(!m.header.truncated());
        assert_eq!(m.header.rcode(), RCODE_NOERROR);
        assert_eq!(m.questions, vec![("web.example".into(), TYPE_A, CLASS_IN)]);
        let data: Vec<_> = m.answers.iter().map(|r| r.data.clone()).collect();
        assert_eq!(data, records);
        for r in &m.answers {
            assert_eq!(r.name, "web.example");
            assert_eq!(r.ttl, ANSWER_TTL);
            assert_eq!(r.class, CLASS_IN);
        }
    }

    #[test]
    fn answers_are_truncated_to_the_limit() {
        let q = Query::parse(&raw_query()).unwrap();
        let records: Vec<_> = (0..100u8)
            .map(|i| RData::A(Ipv4Addr::new(10, 0, 0, i)))
            .collect();
        let out = q.answer(&records, MAX_UDP_LEN);
        assert!(out.len() <= MAX_UDP_LEN);
        let m = parse_message(&out).unwrap();
        assert!(m.header.truncated());
        // 12 header + 17 question + 16 per record.
        assert_eq!(m.answers.len(), (MAX_UDP_LEN - 12 - 17) / 16);
        assert_eq!(m.answers[0].data, RData::A(Ipv4Addr::new(10, 0, 0, 0)));
        // Everything fits over TCP.
        let m = parse_message(&q.answer(&records, MAX_TCP_LEN)).unwrap();
        assert!(!m.header.truncated());
        assert_eq!(m.answers.len(), 100);
    }

    #[test]
    fn error_responses() {
        let q = Query::parse(&raw_query()).unwrap();
        let m = parse_message(&q.error(RCODE_SERVFAIL)).unwrap();
        assert_eq!(m.header.rcode(), RCODE_SERVFAIL);
        assert!(!m.header.authoritative());
        assert_eq!(m.questions.len(), 1);
        assert!(m.answers.is_empty());

        let mut garbage = raw_query();
        garbage.truncate(15);
        let out = header_error(&garbage, RCODE_FORMERR).unwrap();
        let h = Header::parse(&out).unwrap();
        assert_eq!(out.len(), HEADER_LEN);
        assert_eq!(h.id, 0x1234);
        assert!(h.is_response());
        assert!(h.recursion_desired());
        assert_eq!(h.rcode(), RCODE_FORMERR);
        assert_eq!(h.qdcount, 0);
        assert!(header_error(&garbage[..5], RCODE_FORMERR).is_none());
    }

    #[test]
    fn build_query_parses_back() {
        let p = build_query(99, "Db.Net.", TYPE_AAAA).unwrap();
        let q = parse_query(&p).unwrap();
        assert_eq!(q.id, 99);
        assert_eq!(q.name, "db.net");
        assert_eq!(q.qtype, TYPE_AAAA);
        assert!(q.recursion_desired);
        let h = Header::parse(&p).unwrap();
        assert!(!h.is_response());
        assert_eq!(h.opcode(), 0);
    }
}
