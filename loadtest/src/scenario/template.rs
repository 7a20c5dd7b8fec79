//! A message template from a `<send>` CDATA: the text split into literal bytes and keywords at
//! load time, rendered per message without re-parsing. Layout follows SIPp: each line is
//! stripped of leading whitespace, blank lines at the start and end are dropped, lines end in
//! CRLF, the first empty line separates the headers from the body, and `[len]` is the length
//! of the rendered body. A header line whose `[last_*]` or `[routes]` keyword renders empty is
//! dropped whole (SIPp discards the rest of that line).

use crate::sip::write::Put;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kw {
    CallId,
    CallNumber,
    Branch,
    Cseq,
    Service,
    RemoteIp,
    RemotePort,
    LocalIp,
    LocalPort,
    LocalIpType,
    MediaIp,
    MediaIpType,
    MediaPort,
    Transport,
    Pid,
    Len,
    PeerTagParam,
    Routes,
    NextUrl,
    /// `[last_Name:]`: every line of header Name of the last message received.
    Last(Vec<u8>),
    /// `[fieldN]`: field N of the call's line of the injection file (`--inf`).
    Field(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Lit(Vec<u8>),
    Kw(Kw),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    /// Header lines (the start line first), each a list of segments.
    pub head: Vec<Vec<Seg>>,
    /// Body lines.
    pub body: Vec<Vec<Seg>>,
    /// The method of a request (`None` for a response), for transaction bookkeeping.
    pub method: Option<Vec<u8>>,
}

fn keyword(name: &str) -> Result<Kw, String> {
    Ok(match name {
        "call_id" => Kw::CallId,
        "call_number" => Kw::CallNumber,
        "branch" => Kw::Branch,
        "cseq" => Kw::Cseq,
        "service" => Kw::Service,
        "remote_ip" => Kw::RemoteIp,
        "remote_port" => Kw::RemotePort,
        "local_ip" => Kw::LocalIp,
        "local_port" => Kw::LocalPort,
        "local_ip_type" => Kw::LocalIpType,
        "media_ip" => Kw::MediaIp,
        "media_ip_type" => Kw::MediaIpType,
        "media_port" => Kw::MediaPort,
        "transport" => Kw::Transport,
        "pid" => Kw::Pid,
        "len" => Kw::Len,
        "peer_tag_param" => Kw::PeerTagParam,
        "routes" => Kw::Routes,
        "next_url" => Kw::NextUrl,
        _ => {
            if let Some((n, _)) = crate::numbers::field_ref(&format!("[{name}]")) {
                return Ok(Kw::Field(n));
            }
            if let Some(h) = name.strip_prefix("last_") {
                let h = h.strip_suffix(':').unwrap_or(h);
                if !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Ok(Kw::Last(h.as_bytes().to_vec()));
                }
            }
            return Err(format!("keyword [{name}] is not supported"));
        }
    })
}

fn compile_line(line: &str) -> Result<Vec<Seg>, String> {
    let mut segs = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        let name = &rest[open + 1..close];
        // Only identifiers are keywords: "[" in other text (an IPv6 literal) stays literal.
        let is_kw = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '$')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-:$+".contains(&b))
            && name.parse::<std::net::Ipv6Addr>().is_err();
        if !is_kw && name.starts_with("field") {
            // SIPp's [fieldN file="..." line="..."]: several files or fixed lines, not here.
            return Err(format!(
                "keyword [{name}] is not supported (only [fieldN] of the one --inf file)"
            ));
        }
        if !is_kw {
            segs.push(Seg::Lit(rest.as_bytes()[..close + 1].to_vec()));
            rest = &rest[close + 1..];
            continue;
        }
        if open > 0 {
            segs.push(Seg::Lit(rest.as_bytes()[..open].to_vec()));
        }
        segs.push(Seg::Kw(keyword(name)?));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        segs.push(Seg::Lit(rest.as_bytes().to_vec()));
    }
    Ok(segs)
}

impl Template {
    pub fn compile(text: &str) -> Result<Template, String> {
        let lines: Vec<&str> = text
            .lines()
            .map(|l| l.trim_start().trim_end_matches('\r'))
            .collect();
        let first = lines
            .iter()
            .position(|l| !l.trim().is_empty())
            .ok_or("empty message")?;
        let last = lines
            .iter()
            .rposition(|l| !l.trim().is_empty())
            .unwrap_or(first);
        let lines = lines.get(first..=last).unwrap_or(&[]);
        let split = lines
            .iter()
            .position(|l| l.trim().is_empty())
            .unwrap_or(lines.len());
        let mut t = Template::default();
        for l in lines.get(..split).unwrap_or(&[]) {
            t.head.push(compile_line(l.trim_end())?);
        }
        for l in lines.get(split + 1..).unwrap_or(&[]) {
            t.body.push(compile_line(l)?);
        }
        let start = lines.first().copied().unwrap_or("");
        if !start.starts_with("SIP/2.0") {
            t.method = start
                .split_whitespace()
                .next()
                .map(|m| m.as_bytes().to_vec());
        }
        Ok(t)
    }

    pub fn is_request(&self) -> bool {
        self.method.is_some()
    }

    /// The highest `[fieldN]` used, if any.
    pub fn max_field(&self) -> Option<usize> {
        self.head
            .iter()
            .chain(self.body.iter())
            .flatten()
            .filter_map(|s| match s {
                Seg::Kw(Kw::Field(n)) => Some(*n),
                _ => None,
            })
            .max()
    }

    pub fn uses(&self, k: &Kw) -> bool {
        self.head
            .iter()
            .chain(self.body.iter())
            .flatten()
            .any(|s| matches!(s, Seg::Kw(x) if x == k))
    }

    /// Render into `out`. `value` writes a keyword's value and says whether it was non-empty.
    pub fn render(
        &self,
        out: &mut Vec<u8>,
        mut value: impl FnMut(&Kw, &mut Vec<u8>, usize) -> bool,
    ) {
        let mut body = Vec::new();
        for l in &self.body {
            for s in l {
                match s {
                    Seg::Lit(b) => body.put(b),
                    Seg::Kw(k) => {
                        value(k, &mut body, 0);
                    }
                }
            }
            body.put(b"\r\n");
        }
        for l in &self.head {
            let start = out.len();
            let mut drop = false;
            for s in l {
                match s {
                    Seg::Lit(b) => out.put(b),
                    Seg::Kw(k) => {
                        let non_empty = value(k, out, body.len());
                        if !non_empty && matches!(k, Kw::Last(_) | Kw::Routes) {
                            drop = true;
                        }
                    }
                }
            }
            if drop
                || out
                    .get(start..)
                    .is_some_and(|l| l.iter().all(|b| b.is_ascii_whitespace()))
            {
                out.truncate(start);
            } else {
                out.put(b"\r\n");
            }
        }
        out.put(b"\r\n");
        out.put(&body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_renders_like_sipp() {
        let t = Template::compile(
            "\n\n      INVITE sip:[service]@[remote_ip] SIP/2.0\n      [last_Record-Route:]\n      To: <sip:x>[peer_tag_param]\n      Content-Length: [len]\n\n      v=0\n      o=[local_ip]\n\n    ",
        )
        .unwrap();
        assert_eq!(t.method.as_deref(), Some(&b"INVITE"[..]));
        assert_eq!(t.head.len(), 4);
        assert_eq!(t.body.len(), 2);
        let mut out = Vec::new();
        t.render(&mut out, |k, o, len| match k {
            Kw::Service => {
                o.put(b"123");
                true
            }
            Kw::RemoteIp | Kw::LocalIp => {
                o.put(b"1.2.3.4");
                true
            }
            Kw::Len => {
                o.put_u64(len as u64);
                true
            }
            _ => false,
        });
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "INVITE sip:123@1.2.3.4 SIP/2.0\r\nTo: <sip:x>\r\nContent-Length: 16\r\n\r\nv=0\r\no=1.2.3.4\r\n"
        );
    }

    #[test]
    fn refuses_unknown_keywords() {
        let e = Template::compile("INVITE sip:[field0 file=\"b.csv\"] SIP/2.0\n").unwrap_err();
        assert!(e.contains("--inf"), "{e}");
        let e = Template::compile("INVITE sip:[fieldx] SIP/2.0\n").unwrap_err();
        assert!(e.contains("[fieldx]"), "{e}");
        // [fieldN] is an injection file's field (--inf).
        let t = Template::compile("INVITE sip:[field3]@h SIP/2.0\n").unwrap();
        assert_eq!(t.max_field(), Some(3));
        assert!(Template::compile("BYE sip:x SIP/2.0\nX: [authentication]\n").is_err());
        assert!(Template::compile("   \n  ").is_err());
    }
}
