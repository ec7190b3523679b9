//! `COPY --chmod` / `ADD --chmod` values: octal (`755`, `0644`, at most `7777`) or
//! symbolic as chmod(1) (`u+x,g-w,o=r`, `a+X`, `go=u`), as BuildKit accepts them. A
//! symbolic clause with no `ugoa` applies to all (no umask, as BuildKit).

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    Octal(u32),
    /// The clauses, applied in order to each file's current mode.
    Symbolic(Vec<Clause>),
}

/// One symbolic clause: `[ugoa]*` then one or more `[+-=]` actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Bits of `u`, `g`, `o` the clause touches, as the mask 0o700 / 0o070 / 0o007
    /// (plus setuid/setgid/sticky where the action says `s` or `t`).
    who: u32,
    actions: Vec<(char, Perm)>,
}

/// The permission side of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Perm {
    /// `rwxXst` letters.
    Letters(String),
    /// Copy the bits of `u`, `g` or `o`.
    Copy(char),
}

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
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            let mode = u32::from_str_radix(value, 8).map_err(|_| bad())?;
            if mode > 0o7777 {
                return Err(bad());
            }
            return Ok(Chmod::Octal(mode));
        }
        let mut clauses = Vec::new();
        for clause in value.split(',') {
            let who_end = clause.find(['+', '-', '=']).ok_or_else(bad)?;
            let mut who = 0;
            for c in clause[..who_end].chars() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => return Err(bad()),
                };
            }
            if who == 0 {
                who = 0o7777;
            }
            let mut actions = Vec::new();
            let mut rest = &clause[who_end..];
            while let Some(op) = rest.chars().next() {
                if !matches!(op, '+' | '-' | '=') {
                    return Err(bad());
                }
                rest = &rest[1..];
                let end = rest.find(['+', '-', '=']).unwrap_or(rest.len());
                let perm = &rest[..end];
                rest = &rest[end..];
                let perm = match perm {
                    "u" | "g" | "o" => Perm::Copy(perm.chars().next().unwrap_or('u')),
                    p if p.chars().all(|c| "rwxXst".contains(c)) => Perm::Letters(p.to_string()),
                    _ => return Err(bad()),
                };
                actions.push((op, perm));
            }
            clauses.push(Clause { who, actions });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The permission bits (0o7777) a file or directory gets, from its current mode.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(m) => return *m,
            Chmod::Symbolic(c) => c,
        };
        let mut mode = mode & 0o7777;
        for clause in clauses {
            for (op, perm) in &clause.actions {
                let bits = match perm {
                    Perm::Letters(letters) => {
                        let mut b = 0;
                        for c in letters.chars() {
                            b |= match c {
                                'r' => 0o444,
                                'w' => 0o222,
                                'x' => 0o111,
                                'X' if is_dir || mode & 0o111 != 0 => 0o111,
                                's' => 0o6000,
                                't' => 0o1000,
                                _ => 0,
                            };
                        }
                        b
                    }
                    Perm::Copy(from) => {
                        let rwx = match from {
                            'u' => (mode >> 6) & 7,
                            'g' => (mode >> 3) & 7,
                            _ => mode & 7,
                        };
                        rwx * 0o111
                    }
                };
                let bits = bits & clause.who;
                match op {
                    '+' => mode |= bits,
                    '-' => mode &= !bits,
                    _ => {
                        // `=` clears what the clause's who covers (not setuid/setgid
                        // of directories, as chmod(1)), then sets.
                        let mut clear = clause.who & 0o777;
                        if !is_dir {
                            clear |= clause.who & 0o7000;
                        }
                        mode = (mode & !clear) | bits;
                    }
                }
            }
        }
        mode
    }
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
        for bad in ["x", "u", "z+x", "u+q", "u+x,", "", "u+ug"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }
}
