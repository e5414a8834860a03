//! Fast-forward proof from a pushed pack.
//!
//! The gate holds no copy of the repository, so "is `old` an ancestor of
//! `new`?" is answered from the commits the agent pushed: walking parents from
//! `new` through the pack's commits must reach `old`. A fast-forward push always
//! carries that chain (git sends every commit the upstream lacks); when the
//! chain cannot be shown (history rewritten, commits the upstream already has,
//! a commit only present as a delta against an object outside the pack) the
//! update is treated as not a fast-forward. Only commits are kept in memory;
//! every other object is inflated and dropped.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, Read};

use flate2::bufread::ZlibDecoder;

const OBJ_COMMIT: u8 = 1;
const OBJ_OFS_DELTA: u8 = 6;
const OBJ_REF_DELTA: u8 = 7;
/// Commits larger than this are not kept (none real comes close); a huge one only weakens the proof.
pub const MAX_COMMIT_BYTES: usize = 1 << 20;
/// Most bytes the gate inflates from one pushed pack, summed over its objects. Every object
/// must inflate to exactly the size it declares, so a pack of a few KB cannot make the gate
/// inflate gigabytes (a zip bomb); this bounds the work a pack whose declared sizes are
/// themselves huge can cause. A push past it is refused.
pub const MAX_PACK_INFLATED_BYTES: u64 = 256 << 20;

type Oid = [u8; 20];

/// The commit graph a pack carries: commit id → parent ids.
#[derive(Debug, Default)]
pub struct Graph {
    parents: HashMap<Oid, Vec<Oid>>,
}

impl Graph {
    /// Reads a whole pack stream. An empty stream is an empty pack.
    pub fn read(reader: impl BufRead) -> io::Result<Self> {
        let mut r = Counting { inner: reader, pos: 0 };
        let mut graph = Self::default();
        if r.fill_buf()?.is_empty() {
            return Ok(graph);
        }
        let mut head = [0u8; 12];
        r.read_exact(&mut head)?;
        if &head[..4] != b"PACK" || !matches!(u32::from_be_bytes([head[4], head[5], head[6], head[7]]), 2 | 3) {
            return Err(bad("not a version 2/3 pack"));
        }
        let count = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        let mut inflated = 0u64;
        // Commits by pack offset (for OFS_DELTA bases) and by id (for REF_DELTA bases).
        let mut by_offset: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut by_oid: HashMap<Oid, u64> = HashMap::new();
        for _ in 0..count {
            let offset = r.pos;
            let (kind, size) = object_header(&mut r)?;
            let base = match kind {
                OBJ_OFS_DELTA => {
                    let back = ofs_delta_distance(&mut r)?;
                    offset.checked_sub(back).and_then(|o| by_offset.get(&o)).cloned()
                }
                OBJ_REF_DELTA => {
                    let mut oid = [0u8; 20];
                    r.read_exact(&mut oid)?;
                    by_oid.get(&oid).and_then(|o| by_offset.get(o)).cloned()
                }
                _ => None,
            };
            inflated = inflated.saturating_add(size);
            if inflated > MAX_PACK_INFLATED_BYTES {
                return Err(bad(&format!("objects declare more than {MAX_PACK_INFLATED_BYTES} bytes inflated")));
            }
            let keep = (kind == OBJ_COMMIT || base.is_some()) && size <= MAX_COMMIT_BYTES as u64;
            // One byte past the declared size is read to see the stream end there and no later.
            let mut z = ZlibDecoder::new(&mut r).take(size + 1);
            let (body, got) = if keep {
                let mut v = Vec::with_capacity(size as usize);
                z.read_to_end(&mut v)?;
                let n = v.len() as u64;
                (Some(v), n)
            } else {
                (None, io::copy(&mut z, &mut io::sink())?)
            };
            if got != size {
                return Err(bad(&format!("an object declares {size} bytes and inflates to more or fewer")));
            }
            let commit = match (body, base) {
                (Some(b), None) if kind == OBJ_COMMIT => b,
                (Some(delta), Some(base)) => apply_delta(&base, &delta)?,
                _ => continue,
            };
            let oid = commit_id(&commit);
            graph.parents.insert(oid, parse_parents(&commit));
            by_oid.insert(oid, offset);
            by_offset.insert(offset, commit);
        }
        Ok(graph)
    }

    /// Whether walking parents from `new` through the pack reaches `old` (hex ids).
    pub fn reaches(&self, new: &str, old: &str) -> bool {
        let (Some(new), Some(old)) = (unhex(new), unhex(old)) else { return false };
        if new == old {
            return true;
        }
        let mut seen = HashSet::new();
        let mut todo = vec![new];
        while let Some(c) = todo.pop() {
            if c == old {
                return true;
            }
            if seen.insert(c) {
                todo.extend(self.parents.get(&c).into_iter().flatten().copied());
            }
        }
        false
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("pack: {msg}"))
}

fn byte(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

fn object_header(r: &mut impl Read) -> io::Result<(u8, u64)> {
    let mut c = byte(r)?;
    let kind = (c >> 4) & 7;
    let mut size = u64::from(c & 15);
    let mut shift = 4;
    while c & 0x80 != 0 {
        c = byte(r)?;
        if shift > 57 {
            return Err(bad("object size overflows"));
        }
        size |= u64::from(c & 0x7f) << shift;
        shift += 7;
    }
    Ok((kind, size))
}

fn ofs_delta_distance(r: &mut impl Read) -> io::Result<u64> {
    let mut c = byte(r)?;
    let mut ofs = u64::from(c & 0x7f);
    while c & 0x80 != 0 {
        c = byte(r)?;
        ofs = ofs.checked_add(1).and_then(|o| o.checked_mul(128)).ok_or_else(|| bad("delta offset overflows"))?
            | u64::from(c & 0x7f);
    }
    Ok(ofs)
}

fn delta_varint(d: &[u8], i: &mut usize) -> io::Result<usize> {
    let (mut v, mut shift) = (0usize, 0);
    loop {
        let c = *d.get(*i).ok_or_else(|| bad("truncated delta"))?;
        *i += 1;
        if shift > 56 {
            return Err(bad("delta size overflows"));
        }
        v |= usize::from(c & 0x7f) << shift;
        shift += 7;
        if c & 0x80 == 0 {
            return Ok(v);
        }
    }
}

/// Applies a git delta (copy/insert instructions) to `base`.
fn apply_delta(base: &[u8], d: &[u8]) -> io::Result<Vec<u8>> {
    let mut i = 0;
    if delta_varint(d, &mut i)? != base.len() {
        return Err(bad("delta base size mismatch"));
    }
    let size = delta_varint(d, &mut i)?;
    if size > MAX_COMMIT_BYTES {
        return Err(bad("delta result too large"));
    }
    let mut out = Vec::with_capacity(size);
    while i < d.len() {
        let op = d[i];
        i += 1;
        if op & 0x80 != 0 {
            let mut field = |bits: std::ops::Range<u32>| -> io::Result<usize> {
                let mut v = 0usize;
                for (n, bit) in bits.enumerate() {
                    if op & (1 << bit) != 0 {
                        v |= usize::from(*d.get(i).ok_or_else(|| bad("truncated delta copy"))?) << (8 * n);
                        i += 1;
                    }
                }
                Ok(v)
            };
            let off = field(0..4)?;
            let len = match field(4..7)? {
                0 => 0x10000,
                n => n,
            };
            let src = off
                .checked_add(len)
                .and_then(|end| base.get(off..end))
                .ok_or_else(|| bad("delta copy out of range"))?;
            out.extend_from_slice(src);
        } else if op != 0 {
            let n = usize::from(op);
            out.extend_from_slice(d.get(i..i + n).ok_or_else(|| bad("truncated delta insert"))?);
            i += n;
        } else {
            return Err(bad("reserved delta opcode"));
        }
    }
    if out.len() != size {
        return Err(bad("delta result size mismatch"));
    }
    Ok(out)
}

fn commit_id(body: &[u8]) -> Oid {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(format!("commit {}\0", body.len()).as_bytes());
    ctx.update(body);
    let mut oid = [0u8; 20];
    oid.copy_from_slice(ctx.finish().as_ref());
    oid
}

fn parse_parents(body: &[u8]) -> Vec<Oid> {
    body.split(|&b| b == b'\n')
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix(b"parent "))
        .filter_map(|h| std::str::from_utf8(h).ok().and_then(unhex))
        .collect()
}

fn unhex(s: &str) -> Option<Oid> {
    if s.len() != 40 {
        return None;
    }
    let mut oid = [0u8; 20];
    for (i, b) in oid.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(oid)
}

/// A `BufRead` that knows its position, for OFS_DELTA bases.
struct Counting<R> {
    inner: R,
    pos: u64,
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.pos += n as u64;
        self.inner.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_copies_and_inserts() {
        let base = b"tree x\nparent a\n";
        // base size 16, result size 9: copy 4 bytes from offset 0, insert "abcde".
        let delta = [16, 9, 0x80 | 0x01 | 0x10, 0, 4, 5, b'a', b'b', b'c', b'd', b'e'];
        assert_eq!(apply_delta(base, &delta).unwrap(), b"treeabcde");
        assert!(apply_delta(base, &[15, 1, 1, b'x']).is_err());
    }

    /// A one-object pack: a blob declaring `declared` bytes whose zlib stream holds `data`.
    fn blob_pack(declared: u64, data: &[u8]) -> Vec<u8> {
        let mut p = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        let (mut c, mut rest) = ((3u8 << 4) | (declared & 15) as u8, declared >> 4);
        while rest != 0 {
            p.push(c | 0x80);
            c = (rest & 0x7f) as u8;
            rest >>= 7;
        }
        p.push(c);
        let mut z = flate2::write::ZlibEncoder::new(p, flate2::Compression::fast());
        std::io::Write::write_all(&mut z, data).unwrap();
        z.finish().unwrap()
    }

    #[test]
    fn an_object_inflating_past_its_declared_size_is_refused_early() {
        // 8 MiB of zeros is an 8 KB stream; it declares 100 bytes, and the gate stops at byte 101.
        let bomb = blob_pack(100, &vec![0u8; 8 << 20]);
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        let err = Graph::read(&bomb[..]).unwrap_err().to_string();
        assert!(err.contains("declares 100 bytes"), "{err}");
        assert!(Graph::read(&blob_pack(100, &[7u8; 99])[..]).is_err(), "fewer bytes than declared");
        assert!(Graph::read(&blob_pack(100, &[7u8; 100])[..]).is_ok());
    }

    #[test]
    fn a_pack_declaring_more_than_the_inflate_cap_is_refused_before_inflating() {
        let err = Graph::read(&blob_pack(MAX_PACK_INFLATED_BYTES + 1, b"x")[..]).unwrap_err().to_string();
        assert!(err.contains("more than"), "{err}");
    }

    #[test]
    fn garbage_is_an_error_and_empty_is_empty() {
        assert!(Graph::read(&b"NOTAPACK0000"[..]).is_err());
        assert!(Graph::read(&b""[..]).unwrap().parents.is_empty());
    }
}
