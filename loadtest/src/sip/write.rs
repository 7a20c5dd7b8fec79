//! Appending message text to a reusable buffer without `fmt` on the hot path.

use std::net::{IpAddr, SocketAddr};

pub trait Put {
    fn put(&mut self, b: &[u8]);
    fn put_u64(&mut self, v: u64);
    fn put_hex(&mut self, v: u64);
    fn put_ip(&mut self, ip: IpAddr);
    fn put_addr(&mut self, a: SocketAddr);
}

impl Put for Vec<u8> {
    #[inline]
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    fn put_u64(&mut self, mut v: u64) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.extend_from_slice(&tmp[i..]);
    }
    fn put_hex(&mut self, mut v: u64) {
        let mut tmp = [0u8; 16];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b"0123456789abcdef"[(v & 15) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.extend_from_slice(&tmp[i..]);
    }
    fn put_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => {
                for (n, o) in v4.octets().iter().enumerate() {
                    if n > 0 {
                        self.push(b'.');
                    }
                    self.put_u64(u64::from(*o));
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write;
                let _ = write!(self, "[{v6}]");
            }
        }
    }
    fn put_addr(&mut self, a: SocketAddr) {
        self.put_ip(a.ip());
        self.push(b':');
        self.put_u64(u64::from(a.port()));
    }
}

/// Parse lowercase hex digits (as written by `put_hex`).
pub fn parse_hex(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let mut v = 0u64;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let mut v = Vec::new();
        v.put_u64(0);
        v.put(b" ");
        v.put_u64(18446744073709551615);
        v.put(b" ");
        v.put_hex(0xdead0);
        v.put(b" ");
        v.put_addr("127.0.0.1:5060".parse().unwrap());
        assert_eq!(v, b"0 18446744073709551615 dead0 127.0.0.1:5060");
        assert_eq!(parse_hex(b"dead0"), Some(0xdead0));
        assert_eq!(parse_hex(b"DEAD"), None);
    }
}
