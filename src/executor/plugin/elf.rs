//! A pre-flight check of a plugin file's ELF headers before `dlopen`.
//!
//! glibc maps a library's segments without comparing them with the file's length, so a
//! truncated `.so` (an interrupted fetch, a full disk) passes `dlopen`'s own checks and then kills
//! the whole executor with `SIGBUS` while the loader touches the missing pages. Checking that the
//! program headers, every segment and the section header table lie inside the file turns that
//! crash into a [`PluginError`] naming the file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::PluginError;

const MAGIC: &[u8; 4] = b"\x7fELF";
const CLASS_32: u8 = 1;
const CLASS_64: u8 = 2;
const DATA_LE: u8 = 1;
const DATA_BE: u8 = 2;
const TYPE_DYN: u16 = 3;
/// `e_phnum` escape value: the real count lives in section 0; left to the dynamic loader.
const PN_XNUM: u16 = 0xffff;

/// Field offsets and sizes of the ELF class the executor itself uses.
struct Layout {
    class: u8,
    header_size: u64,
    phoff: (usize, usize),
    shoff: (usize, usize),
    phentsize: usize,
    phnum: usize,
    shentsize: usize,
    shnum: usize,
    /// (p_offset, p_filesz) inside a program header: offset and width.
    p_offset: (usize, usize),
    p_filesz: (usize, usize),
}

const LAYOUT_64: Layout = Layout {
    class: CLASS_64,
    header_size: 64,
    phoff: (32, 8),
    shoff: (40, 8),
    phentsize: 54,
    phnum: 56,
    shentsize: 58,
    shnum: 60,
    p_offset: (8, 8),
    p_filesz: (32, 8),
};

const LAYOUT_32: Layout = Layout {
    class: CLASS_32,
    header_size: 52,
    phoff: (28, 4),
    shoff: (32, 4),
    phentsize: 42,
    phnum: 44,
    shentsize: 46,
    shnum: 48,
    p_offset: (4, 4),
    p_filesz: (16, 4),
};

/// The executor's own class and byte order; a library of another kind is left for `dlopen` to
/// refuse with its "wrong ELF class" message.
const HOST: (&Layout, u8) = (
    if cfg!(target_pointer_width = "64") {
        &LAYOUT_64
    } else {
        &LAYOUT_32
    },
    if cfg!(target_endian = "little") {
        DATA_LE
    } else {
        DATA_BE
    },
);

/// Reads an unsigned little/big-endian field of `width` bytes (2, 4 or 8) at `at`.
fn field(bytes: &[u8], (at, width): (usize, usize)) -> u64 {
    let mut value = 0u64;
    let slice = &bytes[at..at + width];
    if HOST.1 == DATA_LE {
        for b in slice.iter().rev() {
            value = value << 8 | u64::from(*b);
        }
    } else {
        for b in slice {
            value = value << 8 | u64::from(*b);
        }
    }
    value
}

/// Checks that `path` looks like a complete shared library of the executor's kind.
pub(crate) fn check(path: &Path) -> Result<(), PluginError> {
    let io = |source| PluginError::Io {
        path: path.to_path_buf(),
        source,
    };
    let not_library = |reason: String| PluginError::NotSharedLibrary {
        path: path.to_path_buf(),
        reason,
    };
    let truncated = |what: String, needed: u64, size: u64| PluginError::Truncated {
        path: path.to_path_buf(),
        what,
        needed,
        size,
    };

    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut header = [0u8; 64];
    let got = read_prefix(&file, &mut header).map_err(io)?;
    if got < MAGIC.len() || &header[..4] != MAGIC {
        return Err(not_library(
            "it does not start with the ELF magic bytes".to_owned(),
        ));
    }
    let (layout, data) = HOST;
    if got < 6 || header[4] != layout.class || header[5] != data {
        // Another class or byte order (or a header too short to say): dlopen explains it best.
        return Ok(());
    }
    if size < layout.header_size {
        return Err(truncated(
            "the ELF header".to_owned(),
            layout.header_size,
            size,
        ));
    }
    let e_type = field(&header, (16, 2)) as u16;
    if e_type != TYPE_DYN {
        return Err(not_library(format!(
            "it is an ELF file of type {e_type}, not a shared object (type {TYPE_DYN})"
        )));
    }

    let phoff = field(&header, layout.phoff);
    let phentsize = field(&header, (layout.phentsize, 2));
    let phnum = field(&header, (layout.phnum, 2));
    let shoff = field(&header, layout.shoff);
    let shentsize = field(&header, (layout.shentsize, 2));
    let shnum = field(&header, (layout.shnum, 2));

    if shoff != 0 {
        let end = shnum
            .checked_mul(shentsize)
            .and_then(|n| n.checked_add(shoff))
            .unwrap_or(u64::MAX);
        if end > size {
            return Err(truncated("the section header table".to_owned(), end, size));
        }
    }
    if phnum == u64::from(PN_XNUM) {
        return Ok(());
    }
    let table_end = phnum
        .checked_mul(phentsize)
        .and_then(|n| n.checked_add(phoff))
        .unwrap_or(u64::MAX);
    if table_end > size {
        return Err(truncated(
            "the program header table".to_owned(),
            table_end,
            size,
        ));
    }
    let needed_entry = (layout.p_filesz.0 + layout.p_filesz.1) as u64;
    if phnum > 0 && phentsize < needed_entry {
        return Err(not_library(format!(
            "its program headers are {phentsize} bytes, too small for this ELF class"
        )));
    }
    let mut entry = vec![0u8; phentsize as usize];
    for index in 0..phnum {
        file.read_exact_at(&mut entry, phoff + index * phentsize)
            .map_err(io)?;
        let offset = field(&entry, layout.p_offset);
        let filesz = field(&entry, layout.p_filesz);
        let end = offset.saturating_add(filesz);
        if end > size {
            return Err(truncated(format!("segment {index}"), end, size));
        }
    }
    Ok(())
}

/// Reads as much of the file's start as fits in `buf`; returns how much was read.
fn read_prefix(file: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
