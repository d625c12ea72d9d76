//! Domain names in wire form (RFC 1035 §3.1), lower-cased: the keys of the catalog.
//! Helpers walk labels without allocating.

/// The longest name on the wire, root label included.
pub const MAX_NAME: usize = 255;

/// An owned name, wire form, lower-case, absolute (ends with the root label).
pub type Name = Box<[u8]>;

/// Offsets of each label of `name` (wire form), from the first; `n` is how many. The
/// root label is not counted. Returns None if the name is malformed.
pub fn label_offsets(name: &[u8], offs: &mut [u8; 128]) -> Option<usize> {
    let mut i = 0usize;
    let mut n = 0usize;
    loop {
        let len = *name.get(i)? as usize;
        if len == 0 {
            return (i + 1 == name.len()).then_some(n);
        }
        if len > 63 || n == offs.len() {
            return None;
        }
        offs[n] = i as u8;
        n += 1;
        i += 1 + len;
    }
}

/// The length of the uncompressed name `bytes` starts with (root label included);
/// None if it is malformed, compressed or longer than a name may be.
pub fn wire_len(bytes: &[u8]) -> Option<usize> {
    let mut i = 0usize;
    loop {
        let len = usize::from(*bytes.get(i)?);
        if len == 0 {
            return (i < MAX_NAME).then_some(i + 1);
        }
        if len > 63 {
            return None;
        }
        i += 1 + len;
    }
}

/// The name one label up (`None` for the root).
pub fn parent(name: &[u8]) -> Option<&[u8]> {
    let len = *name.first()? as usize;
    if len == 0 {
        return None;
    }
    name.get(1 + len..)
}

/// Whether `name` is `ancestor` or below it (both wire form, same case).
pub fn is_within(name: &[u8], ancestor: &[u8]) -> bool {
    let mut n = name;
    loop {
        if n == ancestor {
            return true;
        }
        match parent(n) {
            Some(p) => n = p,
            None => return false,
        }
    }
}

/// Text form of a wire name, for messages and tests ("www.example.com.").
pub fn to_text(name: &[u8]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while let Some(&len) = name.get(i) {
        if len == 0 {
            break;
        }
        let label = name.get(i + 1..i + 1 + len as usize).unwrap_or(&[]);
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                s.push(b as char);
            } else {
                s.push_str(&format!("\\{b:03}"));
            }
        }
        s.push('.');
        i += 1 + len as usize;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// Wire form of a text name ("www.example.com." or without the final dot), lower-cased.
/// Escapes are not supported: for configuration and tests.
pub fn from_text(text: &str) -> Option<Name> {
    let mut out = Vec::with_capacity(text.len() + 2);
    for label in text.trim_end_matches('.').split('.') {
        if label.is_empty() {
            if text == "." || text.is_empty() {
                break;
            }
            return None;
        }
        if label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    (out.len() <= MAX_NAME).then(|| out.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_labels() {
        let n = from_text("www.Example.com.").unwrap();
        assert_eq!(&n[..], b"\x03www\x07example\x03com\x00");
        assert_eq!(to_text(&n), "www.example.com.");
        let mut offs = [0u8; 128];
        assert_eq!(label_offsets(&n, &mut offs), Some(3));
        assert_eq!(&offs[..3], &[0, 4, 12]);
        assert_eq!(parent(&n).map(to_text).as_deref(), Some("example.com."));
        assert!(is_within(&n, &from_text("com").unwrap()));
        assert!(!is_within(&from_text("com").unwrap(), &n));
        assert_eq!(label_offsets(b"\x03ab", &mut offs), None, "truncated");
        assert_eq!(to_text(b"\x00"), ".");
    }
}
