//! `COPY --chmod` / `ADD --chmod` values: octal (`755`, `0644`, at most `7777`) or
//! symbolic as chmod(1) describes them (`u+x,g-w,o=r`, `a+X`, `go=u`), applied as
//! BuildKit applies them, with a zero umask:
//! - a clause without `ugoa` applies to everyone;
//! - `X` adds execute only where the file is a directory or already had an execute
//!   bit, and only with `+`;
//! - `s` sets the set-user-ID bit for `u` and set-group-ID for `g` (nothing for `o`
//!   alone); `t` sets the sticky bit unless the clause names only `o`;
//! - `=` clears the named classes' permission and set-ID bits before setting, and the
//!   sticky bit only when `t` is among the new permissions;
//! - `u`, `g` or `o` after an operator copies that class's current bits.
//!
//! Written here from chmod(1)'s description; the tests pin the cases BuildKit's builds
//! show.

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    /// The clauses, applied in order to each file's current mode.
    Symbolic(Vec<Clause>),
}

/// One clause of a symbolic mode: who, then its actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// The classes named (`u`, `g`, `o` as bits 4, 2, 1); 0 when none was named.
    who: u8,
    actions: Vec<Action>,
}

/// `+`, `-` or `=` with what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Action {
    op: u8,
    perms: Perms,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Perms {
    /// Letters from `rwxXst`.
    Letters {
        rwx: u32,
        big_x: bool,
        s: bool,
        t: bool,
    },
    /// A class to copy from (`u`, `g`, `o`).
    Copy(u8),
}

const WHO_U: u8 = 4;
const WHO_G: u8 = 2;
const WHO_O: u8 = 1;

/// A value that is neither octal nor symbolic. Displays as BuildKit does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777")]
pub struct ChmodError {
    pub value: String,
}

impl Chmod {
    /// Parses an (expanded) `--chmod` value.
    pub fn parse(value: &str) -> Result<Chmod, ChmodError> {
        let bad = || ChmodError {
            value: value.to_string(),
        };
        let Some(&first) = value.as_bytes().first() else {
            return Err(bad());
        };
        if first.is_ascii_digit() {
            let mode = u32::from_str_radix(value, 8).map_err(|_| bad())?;
            if mode > 0o7777 {
                return Err(bad());
            }
            return Ok(Chmod::Octal(mode));
        }
        value
            .split(',')
            .map(parse_clause)
            .collect::<Option<Vec<Clause>>>()
            .map(Chmod::Symbolic)
            .ok_or_else(bad)
    }

    /// The permission bits (0o7777) a file or directory gets, from its current mode.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(c) => c,
        };
        let original = mode & 0o7777;
        let mut new = original;
        for clause in clauses {
            // Everyone when no class is named (the umask is 0).
            let who = if clause.who == 0 {
                WHO_U | WHO_G | WHO_O
            } else {
                clause.who
            };
            let rwx_mask = class_bits(who, 0o7);
            let setid_mask = if who & WHO_U != 0 { 0o4000 } else { 0 }
                | if who & WHO_G != 0 { 0o2000 } else { 0 };
            let sticky_ok = clause.who == 0 || clause.who & (WHO_U | WHO_G) != 0;
            for action in &clause.actions {
                let bits = match &action.perms {
                    Perms::Copy(from) => {
                        let shift = match *from {
                            WHO_U => 6,
                            WHO_G => 3,
                            _ => 0,
                        };
                        class_bits(who, (new >> shift) & 0o7)
                    }
                    Perms::Letters { rwx, big_x, s, t } => {
                        let mut b = *rwx & rwx_mask;
                        if *big_x && action.op == b'+' && (is_dir || original & 0o111 != 0) {
                            b |= 0o111 & rwx_mask;
                        }
                        if *s {
                            b |= setid_mask;
                        }
                        if *t && sticky_ok {
                            b |= 0o1000;
                        }
                        b
                    }
                };
                match action.op {
                    b'+' => new |= bits,
                    b'-' => new &= !bits,
                    _ => {
                        let sticky = if bits & 0o1000 != 0 { 0o1000 } else { 0 };
                        new &= !(rwx_mask | setid_mask | sticky);
                        new |= bits;
                    }
                }
            }
        }
        new
    }
}

/// `bits` (three rwx bits) placed in each class of `who`.
fn class_bits(who: u8, bits: u32) -> u32 {
    let mut out = 0;
    if who & WHO_U != 0 {
        out |= bits << 6;
    }
    if who & WHO_G != 0 {
        out |= bits << 3;
    }
    if who & WHO_O != 0 {
        out |= bits;
    }
    out
}

/// One clause (`[ugoa]*` then one or more actions); None when malformed.
fn parse_clause(text: &str) -> Option<Clause> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut who = 0u8;
    while let Some(&c) = bytes.get(i) {
        who |= match c {
            b'u' => WHO_U,
            b'g' => WHO_G,
            b'o' => WHO_O,
            b'a' => WHO_U | WHO_G | WHO_O,
            _ => break,
        };
        i += 1;
    }
    let mut actions = Vec::new();
    while let Some(&op) = bytes.get(i) {
        if !matches!(op, b'+' | b'-' | b'=') {
            return None;
        }
        i += 1;
        // Classes to copy (`u`, `g`, `o`; several may follow one operator), or
        // permission letters (perhaps none: `u=` clears).
        let mut copied = false;
        while let Some(&c @ (b'u' | b'g' | b'o')) = bytes.get(i) {
            let from = match c {
                b'u' => WHO_U,
                b'g' => WHO_G,
                _ => WHO_O,
            };
            actions.push(Action {
                op,
                perms: Perms::Copy(from),
            });
            copied = true;
            i += 1;
        }
        let (mut rwx, mut big_x, mut s, mut t) = (0, false, false, false);
        let letters_start = i;
        while let Some(&c) = bytes.get(i) {
            match c {
                b'r' => rwx |= 0o444,
                b'w' => rwx |= 0o222,
                b'x' => rwx |= 0o111,
                b'X' => big_x = true,
                b's' => s = true,
                b't' => t = true,
                _ => break,
            }
            i += 1;
        }
        if !copied || i > letters_start {
            actions.push(Action {
                op,
                perms: Perms::Letters { rwx, big_x, s, t },
            });
        }
    }
    (i == bytes.len() && !actions.is_empty()).then_some(Clause { who, actions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(spec: &str, mode: u32, is_dir: bool) -> u32 {
        Chmod::parse(spec).unwrap().apply(mode, is_dir)
    }

    #[test]
    fn octal_values() {
        assert_eq!(Chmod::parse("755").unwrap(), Chmod::Octal(0o755));
        assert_eq!(Chmod::parse("0644").unwrap(), Chmod::Octal(0o644));
        assert_eq!(Chmod::parse("4755").unwrap().apply(0o600, false), 0o4755);
        assert_eq!(
            Chmod::parse("17777").unwrap_err().to_string(),
            "invalid chmod parameter: '17777'. it should be octal string and between 0 and 07777"
        );
        assert!(Chmod::parse("789").is_err());
    }

    #[test]
    fn symbolic_values() {
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("+x", 0o644, false), 0o755);
        assert_eq!(apply("g-w,o-rwx", 0o775, false), 0o750);
        assert_eq!(apply("go=u", 0o640, false), 0o666);
        assert_eq!(apply("a=r", 0o777, false), 0o444);
        assert_eq!(apply("a+X", 0o644, false), 0o644);
        assert_eq!(apply("a+X", 0o744, false), 0o755);
        assert_eq!(apply("a+X", 0o644, true), 0o755);
        assert_eq!(apply("u+s,+t", 0o755, false), 0o5755);
        assert_eq!(apply("u=rwx,g=rx,o=", 0o000, false), 0o750);
        assert_eq!(apply("u+r-w", 0o600, false), 0o400);
        assert_eq!(apply("+w", 0o444, false), 0o666, "no umask");
        assert_eq!(apply("=", 0o4755, false), 0o000);
        // As BSD chmod: `=` keeps the sticky bit unless `t` is named, `o+t` and
        // `o+s` do nothing, `X` only adds.
        assert_eq!(apply("a=rx", 0o1777, true), 0o1555);
        assert_eq!(apply("o+t,o+s", 0o755, false), 0o755);
        assert_eq!(apply("a-X", 0o755, false), 0o755);
        assert_eq!(apply("u=rw,g+u", 0o4701, false), 0o661);
        assert_eq!(
            apply("u+ug=", 0o754, false),
            0o054,
            "operators may follow each other"
        );
        for bad in ["x", "u", "z+x", "u+q", "u+x,", ""] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }
}
