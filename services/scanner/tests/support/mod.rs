//! Generators of model files, clean and hostile, for the scanner's tests.
#![allow(dead_code)]

use std::io::Write;

use kaiyuan_scanner::{Report, Verdict, scan_bytes};

pub fn verdict_of(bytes: &[u8], path: &str) -> Report {
    scan_bytes(bytes, path)
}

#[track_caller]
pub fn assert_verdict(bytes: &[u8], path: &str, expected: Verdict) -> Report {
    let report = scan_bytes(bytes, path);
    assert_eq!(report.verdict, expected, "{path}: {report:#?}");
    report
}

#[track_caller]
pub fn assert_rule(report: &Report, rule: &str) {
    assert!(
        report.findings.iter().any(|f| f.rule == rule),
        "expected rule {rule} in {report:#?}"
    );
}

/// Pickle opcodes, written by hand.
pub mod pk {
    pub fn proto(v: u8) -> Vec<u8> {
        vec![0x80, v]
    }
    pub fn global(module: &str, name: &str) -> Vec<u8> {
        format!("c{module}\n{name}\n").into_bytes()
    }
    pub fn unicode(s: &str) -> Vec<u8> {
        let mut out = vec![0x8c, s.len() as u8];
        out.extend_from_slice(s.as_bytes());
        out
    }
    pub fn binbytes(b: &[u8]) -> Vec<u8> {
        let mut out = vec![b'B'];
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
        out
    }
    pub fn int(v: u8) -> Vec<u8> {
        vec![b'K', v]
    }
    pub const MARK: u8 = b'(';
    pub const TUPLE: u8 = b't';
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const REDUCE: u8 = b'R';
    pub const BUILD: u8 = b'b';
    pub const STOP: u8 = b'.';
    pub const MEMOIZE: u8 = 0x94;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const EMPTY_DICT: u8 = b'}';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const NEWOBJ: u8 = 0x81;
    pub const SETITEMS: u8 = b'u';
    pub const NONE: u8 = b'N';

    pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// `callable(arg)` for a dotted callable and one string argument.
    pub fn call(module: &str, name: &str, arg: &str) -> Vec<u8> {
        cat(&[
            &proto(2),
            &global(module, name),
            &unicode(arg),
            &[TUPLE1, REDUCE, STOP],
        ])
    }
}

/// A minimal zip writer (stored or deflated members, optional unix mode).
pub struct Zip {
    out: Vec<u8>,
    central: Vec<u8>,
    count: u16,
}

impl Default for Zip {
    fn default() -> Self {
        Self::new()
    }
}

impl Zip {
    pub fn new() -> Self {
        Self {
            out: Vec::new(),
            central: Vec::new(),
            count: 0,
        }
    }

    pub fn add(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.add_full(name, data, false, None, name)
    }

    pub fn add_deflated(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.add_full(name, data, true, None, name)
    }

    pub fn add_symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.add_full(name, target.as_bytes(), false, Some(0o120777), name)
    }

    pub fn add_full(
        &mut self,
        name: &str,
        data: &[u8],
        deflate: bool,
        mode: Option<u32>,
        local_name: &str,
    ) -> &mut Self {
        let crc = crc32fast::hash(data);
        let payload = if deflate {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        } else {
            data.to_vec()
        };
        let method: u16 = if deflate { 8 } else { 0 };
        let offset = self.out.len() as u32;
        let mut local = Vec::new();
        local.extend_from_slice(b"PK\x03\x04");
        local.extend_from_slice(&20u16.to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes());
        local.extend_from_slice(&method.to_le_bytes());
        local.extend_from_slice(&[0, 0, 0, 0]);
        local.extend_from_slice(&crc.to_le_bytes());
        local.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        local.extend_from_slice(&(data.len() as u32).to_le_bytes());
        local.extend_from_slice(&(local_name.len() as u16).to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes());
        local.extend_from_slice(local_name.as_bytes());
        self.out.extend_from_slice(&local);
        self.out.extend_from_slice(&payload);
        let c = &mut self.central;
        c.extend_from_slice(b"PK\x01\x02");
        c.extend_from_slice(&(if mode.is_some() { 0x0314u16 } else { 20u16 }).to_le_bytes());
        c.extend_from_slice(&20u16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&method.to_le_bytes());
        c.extend_from_slice(&[0, 0, 0, 0]);
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        c.extend_from_slice(&(mode.unwrap_or(0o100644) << 16).to_le_bytes());
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        self.count += 1;
        self
    }

    /// A stored member with a local header only: absent from the central directory.
    pub fn add_hidden(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let count = self.count;
        let central = self.central.len();
        self.add(name, data);
        self.central.truncate(central);
        self.count = count;
        self
    }

    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.out.clone();
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&self.central);
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&(self.central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }
}

/// A ustar archive writer.
pub fn tar(entries: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, data, link) in entries {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[108..115].copy_from_slice(b"0000000");
        h[116..123].copy_from_slice(b"0000000");
        let size = format!("{:011o}", data.len());
        h[124..135].copy_from_slice(size.as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = *kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

pub fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Protocol-buffer encoding helpers.
pub mod pb {
    pub fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    pub fn int(field: u32, v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint((field as u64) << 3, &mut out);
        varint(v, &mut out);
        out
    }
    pub fn bytes(field: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(((field as u64) << 3) | 2, &mut out);
        varint(data.len() as u64, &mut out);
        out.extend_from_slice(data);
        out
    }
    pub fn msg(field: u32, parts: &[Vec<u8>]) -> Vec<u8> {
        bytes(field, &parts.concat())
    }
}

/// GGUF writer: metadata (key, type, encoded value) and tensors (name, dims, type, offset).
pub struct Gguf {
    pub kvs: Vec<(String, u32, Vec<u8>)>,
    pub tensors: Vec<(String, Vec<u64>, u32, u64)>,
    pub data: Vec<u8>,
}

pub fn gguf_string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

impl Gguf {
    pub fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (key, ty, value) in &self.kvs {
            out.extend_from_slice(&gguf_string(key));
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(value);
        }
        for (name, dims, ty, offset) in &self.tensors {
            out.extend_from_slice(&gguf_string(name));
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        out.resize(out.len().div_ceil(32) * 32, 0);
        out.extend_from_slice(&self.data);
        out
    }
}

pub fn verdict(v: &str) -> Verdict {
    Verdict::parse(v).unwrap()
}
