//! What a worker binary needs from the machine that runs it, read from its ELF headers: its
//! architecture, and the glibc symbol versions it links against. A binary built on a newer
//! glibc than the AMI's does not start there (the loader refuses it before `main`), and an
//! instance that can't start its worker is a boot loop; so `runner dist upload` refuses it.

use std::collections::BTreeMap;

/// Why a binary can't be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ElfError(String);

/// What the binary asks of its machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    /// `x86_64` or `arm64` (the names `ec2.amis` uses).
    pub arch: String,
    /// Each glibc version needed (`(2, 35)`), with the symbols that need it.
    pub glibc: BTreeMap<(u32, u32), Vec<String>>,
}

impl Requirements {
    /// The versions above `max`, with their symbols: empty when the binary loads there.
    pub fn above(&self, max: (u32, u32)) -> Vec<String> {
        self.glibc
            .iter()
            .filter(|(v, _)| **v > max)
            .map(|((a, b), symbols)| format!("GLIBC_{a}.{b} ({})", symbols.join(", ")))
            .collect()
    }
}

/// Parses `2.34`.
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.trim().split_once('.')?;
    Some((a.parse().ok()?, b.split('.').next()?.parse().ok()?))
}

struct Elf<'a> {
    bytes: &'a [u8],
}

impl Elf<'_> {
    fn get(&self, at: usize, n: usize) -> Result<&[u8], ElfError> {
        self.bytes.get(at..at + n).ok_or_else(|| ElfError(format!("truncated ELF file (offset {at})")))
    }
    fn u16(&self, at: usize) -> Result<u16, ElfError> {
        Ok(u16::from_le_bytes(self.get(at, 2)?.try_into().unwrap_or_default()))
    }
    fn u32(&self, at: usize) -> Result<u32, ElfError> {
        Ok(u32::from_le_bytes(self.get(at, 4)?.try_into().unwrap_or_default()))
    }
    fn u64(&self, at: usize) -> Result<u64, ElfError> {
        Ok(u64::from_le_bytes(self.get(at, 8)?.try_into().unwrap_or_default()))
    }
    fn cstr(&self, at: usize) -> Result<String, ElfError> {
        let rest = self.bytes.get(at..).ok_or_else(|| ElfError("string out of range".into()))?;
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

#[derive(Clone, Copy)]
struct Section {
    kind: u32,
    offset: usize,
    size: usize,
    link: usize,
    entsize: usize,
}

const SHT_DYNSYM: u32 = 11;
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
const SHT_GNU_VERSYM: u32 = 0x6fff_ffff;

/// Reads what a 64-bit little-endian ELF binary needs.
pub fn requirements(bytes: &[u8]) -> Result<Requirements, ElfError> {
    let elf = Elf { bytes };
    if elf.get(0, 4)? != b"\x7fELF" || elf.get(4, 1)? != [2] || elf.get(5, 1)? != [1] {
        return Err(ElfError("not a 64-bit little-endian ELF binary".into()));
    }
    let arch = match elf.u16(18)? {
        62 => "x86_64",
        183 => "arm64",
        other => return Err(ElfError(format!("unsupported ELF machine {other}"))),
    }
    .to_string();
    let (shoff, shentsize, shnum) = (elf.u64(0x28)? as usize, elf.u16(0x3a)? as usize, elf.u16(0x3c)? as usize);
    let mut sections = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let at = shoff + i * shentsize;
        sections.push(Section {
            kind: elf.u32(at + 4)?,
            offset: elf.u64(at + 0x18)? as usize,
            size: elf.u64(at + 0x20)? as usize,
            link: elf.u32(at + 0x28)? as usize,
            entsize: elf.u64(at + 0x38)? as usize,
        });
    }
    let find = |kind| sections.iter().copied().find(|s| s.kind == kind);
    let strtab = |s: Section| sections.get(s.link).map(|t| t.offset).ok_or_else(|| ElfError("bad section link".into()));
    // Version index → glibc version, from the version needs.
    let mut versions: BTreeMap<u16, (u32, u32)> = BTreeMap::new();
    if let Some(verneed) = find(SHT_GNU_VERNEED) {
        let names = strtab(verneed)?;
        let mut at = verneed.offset;
        loop {
            let (count, aux, next) = (elf.u16(at + 2)?, elf.u32(at + 8)? as usize, elf.u32(at + 12)? as usize);
            let mut a = at + aux;
            for _ in 0..count {
                let (other, name, next_aux) = (elf.u16(a + 6)?, elf.u32(a + 8)? as usize, elf.u32(a + 12)? as usize);
                if let Some(v) = elf.cstr(names + name)?.strip_prefix("GLIBC_").and_then(parse_version) {
                    versions.insert(other & 0x7fff, v);
                }
                if next_aux == 0 {
                    break;
                }
                a += next_aux;
            }
            if next == 0 {
                break;
            }
            at += next;
        }
    }
    let mut glibc: BTreeMap<(u32, u32), Vec<String>> = BTreeMap::new();
    if let (Some(dynsym), Some(versym)) = (find(SHT_DYNSYM), find(SHT_GNU_VERSYM)) {
        let names = strtab(dynsym)?;
        let count = dynsym.size / dynsym.entsize.max(1);
        for i in 0..count {
            let index = elf.u16(versym.offset + 2 * i)? & 0x7fff;
            if let Some(v) = versions.get(&index) {
                let name = elf.cstr(names + elf.u32(dynsym.offset + i * dynsym.entsize)? as usize)?;
                glibc.entry(*v).or_default().push(name);
            }
        }
    }
    for v in versions.values() {
        glibc.entry(*v).or_default();
    }
    Ok(Requirements { arch, glibc })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("2.34"), Some((2, 34)));
        assert_eq!(parse_version("2.3.4"), Some((2, 3)));
        assert_eq!(parse_version("two"), None);
    }

    #[test]
    fn a_text_file_is_not_a_binary() {
        assert!(requirements(b"#!/bin/sh\necho hi\n").unwrap_err().to_string().contains("not a 64-bit"));
    }
}
