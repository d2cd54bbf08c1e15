//! Person identifiers, normalised so that two organisations that know the
//! same person produce the same bytes — the bytes that go into the OPRF.
//!
//! Two kinds of key exist:
//! * [`Bsn`]: the Dutch citizen service number, 9 digits passing the
//!   elfproef (11-check); canonical form `bsn:123456782`;
//! * [`NameDobKey`]: surname (Unicode-folded, tussenvoegsels moved out),
//!   first initial and date of birth; canonical form
//!   `nd:jansen,j,2010-04-01`. A register may also know the first given
//!   name (`nd:jansen,j,2010-04-01,jan`) or only the birth month
//!   (`nd:jansen,j,2010-04-00`); the typo-tolerant key families
//!   ([`crate::families`]) use what there is.
//!
//! Folding is NFKD with combining marks removed, after a pre-fold table
//! for the letters NFKD leaves alone (`ı`, `đ`, `ł`, `ø`, `ß`, `æ`, …), so
//! `Yıldız` equals `Yildiz` and `Đorđević` equals `Djordjevic`; a surname
//! with its particles glued (`Vandenberg`, `DeVries`) equals the spelling
//! with them apart.
//!
//! Everything here is a pure function. Errors say *what* is wrong (length,
//! character class, checksum, impossible date) but never echo the value:
//! an error message may reach a log, and a log must hold no personal data.

use std::fmt;
use std::str::FromStr;

use time::{Date, Month};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Why an identifier was refused. No variant carries the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// A BSN with another number of digits than 9.
    #[error("bsn: must have 9 digits, found {0}")]
    BsnLength(usize),
    /// A BSN with a character other than digits, spaces, dots and dashes.
    #[error("bsn: non-digit character at position {0}")]
    BsnNonDigit(usize),
    /// A BSN that fails the 11-check, or is all zeros.
    #[error("bsn: fails the elfproef (11-check)")]
    BsnChecksum,
    /// A surname with no letters left after normalisation.
    #[error("surname: no letters left after normalisation")]
    EmptySurname,
    /// An initial that is not one letter (a trailing dot allowed).
    #[error("initial: must be one letter (\"J\" or \"J.\")")]
    BadInitial,
    /// A surname longer than [`MAX_SURNAME_CHARS`].
    #[error("surname: longer than {MAX_SURNAME_CHARS} characters")]
    SurnameTooLong,
    /// A date in neither accepted format.
    #[error("{0}: expected YYYY-MM-DD or DD-MM-YYYY")]
    DateFormat(&'static str),
    /// A well-formed but impossible date (30 February, month 13).
    #[error("{0}: no such date")]
    ImpossibleDate(&'static str),
    /// A birth date after today.
    #[error("birth_date: lies in the future")]
    FutureDate,
    /// A birth date before 1900.
    #[error("birth_date: before 1900")]
    AncientDate,
    /// A subject key that is neither `bsn:…` nor `nd:…`.
    #[error("key: expected bsn:DIGITS or nd:SURNAME,INITIAL,DATE[,GIVEN_NAME]")]
    UnknownKeyType,
    /// A birth date that gives only the year: no key family can use it.
    #[error("birth_date: a year alone (YYYY-00-00) gives no key; give the month too, or a BSN")]
    YearOnly,
    /// A given name longer than [`MAX_SURNAME_CHARS`].
    #[error("given_name: longer than {MAX_SURNAME_CHARS} characters")]
    GivenNameTooLong,
    /// A given name that does not start with the initial given with it.
    #[error("given_name: does not start with the initial")]
    InitialMismatch,
}

/// Most characters in a surname: the longest registered Dutch surnames
/// have some 60.
pub const MAX_SURNAME_CHARS: usize = 100;

/// A citizen service number that passed the elfproef.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bsn([u8; 9]);

impl Bsn {
    /// Parses a BSN, ignoring spaces, dots and dashes; leading zeros count.
    pub fn parse(input: &str) -> Result<Bsn, IdentifierError> {
        let mut digits = [0u8; 9];
        let mut count = 0usize;
        for (position, c) in input.chars().enumerate() {
            match c {
                ' ' | '.' | '-' => {}
                '0'..='9' => {
                    if count < 9 {
                        digits[count] = c as u8 - b'0';
                    }
                    count += 1;
                }
                _ => return Err(IdentifierError::BsnNonDigit(position + 1)),
            }
        }
        if count != 9 {
            return Err(IdentifierError::BsnLength(count));
        }
        let weighted: i32 = digits[..8]
            .iter()
            .zip((2..=9).rev())
            .map(|(d, w)| i32::from(*d) * w)
            .sum::<i32>()
            - i32::from(digits[8]);
        if weighted % 11 != 0 || digits.iter().all(|d| *d == 0) {
            return Err(IdentifierError::BsnChecksum);
        }
        Ok(Bsn(digits))
    }

    /// The nine digits.
    pub fn digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

/// The ninth digit that makes eight digits (`first_eight` < 10^8, leading
/// zeros implied) pass the elfproef, if there is one (a remainder of 10
/// has no digit). The rule [`Bsn::parse`] checks, for generators and tests.
pub fn elfproef_check_digit(first_eight: u32) -> Option<u8> {
    let sum: u32 = (0..8)
        .map(|i| (first_eight / 10u32.pow(7 - i)) % 10 * (9 - i))
        .sum();
    u8::try_from(sum % 11).ok().filter(|d| *d < 10)
}

impl fmt::Debug for Bsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs and panics: never the number.
        f.write_str("Bsn(…)")
    }
}

/// Dutch surname particles (tussenvoegsels), folded. Multi-word particles
/// ("van der", "in 't") are sequences of these.
const PARTICLES: &[&str] = &[
    "van", "von", "vande", "vander", "de", "der", "den", "des", "del", "della", "di", "da", "du",
    "het", "'t", "t", "te", "ten", "ter", "in", "'s", "s", "op", "onder", "over", "aan", "bij",
    "uit", "uijt", "voor", "la", "le", "les", "l'", "d'", "el", "al", "zu", "zum", "zur", "dos",
];

/// Letters NFKD does not decompose, written as registers that lack them
/// write them: Turkish dotless ı, Balkan đ (`Đorđević` / `Djordjevic`),
/// Polish ł, Scandinavian ø and æ, German ß, French œ, Icelandic þ and
/// ð, Maltese ħ, Sámi ŧ, Azerbaijani ə.
const PRE_FOLD: &[(char, &str)] = &[
    ('ı', "i"),
    ('đ', "dj"),
    ('Đ', "Dj"),
    ('ł', "l"),
    ('Ł', "L"),
    ('ø', "o"),
    ('Ø', "O"),
    ('ß', "ss"),
    ('ẞ', "SS"),
    ('æ', "ae"),
    ('Æ', "Ae"),
    ('œ', "oe"),
    ('Œ', "Oe"),
    ('þ', "th"),
    ('Þ', "Th"),
    ('ð', "d"),
    ('Ð', "D"),
    ('ħ', "h"),
    ('Ħ', "H"),
    ('ŧ', "t"),
    ('Ŧ', "T"),
    ('ə', "e"),
    ('Ə', "E"),
];

/// `name` with every [`PRE_FOLD`] letter replaced.
fn pre_fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match PRE_FOLD.iter().find(|(from, _)| *from == c) {
            Some((_, to)) => out.push_str(to),
            None => out.push(c),
        }
    }
    out
}

/// Folds a name: the pre-fold table, NFKD, combining marks removed,
/// lowercase, only letters, digits, apostrophes and hyphens kept,
/// whitespace collapsed.
pub fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending_space = false;
    for c in pre_fold(name).nfkd().filter(|c| !is_combining_mark(*c)) {
        let c = match c {
            '\u{2018}' | '\u{2019}' | '`' | '\u{b4}' => '\'',
            '\u{2010}'..='\u{2015}' => '-',
            c => c,
        };
        if c.is_alphanumeric() || c == '\'' || c == '-' {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else {
            pending_space = true;
        }
    }
    out
}

fn is_particle(token: &str) -> bool {
    PARTICLES.contains(&token)
}

/// Particles a register glues to the name in lower case (`Vandenberg`,
/// `Vandermeer`, `Vandijk`), longest first. Shorter ones (`de`, `ter`) are
/// unglued only where a capital shows the seam (`DeVries`): `Dekker` and
/// `Terpstra` are names of their own.
const GLUED: &[&str] = &["vanden", "vander", "vande", "van"];

/// Fewest letters that must remain after a glued particle: `Vance` and
/// `Vanli` are names, not `van` + something.
const MIN_UNGLUED: usize = 3;

/// Puts a space after leading particles that a capital shows glued on
/// (`VanDenBerg` → `Van Den Berg`, `DeVries` → `De Vries`); other capitals
/// inside a word (`McDonald`, `MacArthur`) stay as they are.
fn split_glued_capitals(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (n, word) in name.split(' ').enumerate() {
        if n > 0 {
            out.push(' ');
        }
        let mut rest = word;
        loop {
            let seam = rest
                .char_indices()
                .zip(rest.chars().skip(1))
                .find(|((_, a), b)| a.is_lowercase() && b.is_uppercase())
                .map(|((i, a), _)| i + a.len_utf8());
            match seam {
                Some(at) if is_particle(&fold(&rest[..at])) => {
                    out.push_str(&rest[..at]);
                    out.push(' ');
                    rest = &rest[at..];
                }
                _ => break,
            }
        }
        out.push_str(rest);
    }
    out
}

/// A single remaining token without a glued lower-case particle
/// (`vandenberg` → `berg`), if what remains is long enough.
fn unglue(token: &str) -> &str {
    for particle in GLUED {
        if let Some(rest) = token.strip_prefix(particle) {
            if rest.chars().filter(|c| c.is_alphabetic()).count() >= MIN_UNGLUED {
                return rest;
            }
        }
    }
    token
}

/// The surname without its particles: "van der Berg", "Berg, van der" and
/// "BERG VAN DER" (comma lost) all become "berg".
pub fn normalise_surname(surname: &str) -> Result<String, IdentifierError> {
    // "Jansen, van" puts the particles after a comma; drop them.
    let main = match surname.split_once(',') {
        Some((main, rest))
            if fold(rest)
                .split(' ')
                .all(|t| t.is_empty() || is_particle(t)) =>
        {
            main
        }
        _ => surname,
    };
    let folded = fold(&split_glued_capitals(main));
    let mut tokens: Vec<&str> = folded.split(' ').filter(|t| !t.is_empty()).collect();
    // Leading particles ("van der Berg"); keep at least one token.
    while tokens.len() > 1 && is_particle(tokens[0]) {
        tokens.remove(0);
    }
    // Trailing particles, where a comma was lost ("Berg van der").
    while tokens.len() > 1 && tokens.last().is_some_and(|t| is_particle(t)) {
        tokens.pop();
    }
    if let [only] = tokens.as_mut_slice() {
        *only = unglue(only);
    }
    let key = tokens.join(" ");
    if !key.chars().any(char::is_alphabetic) {
        return Err(IdentifierError::EmptySurname);
    }
    Ok(key)
}

/// Parses `YYYY-MM-DD` or `DD-MM-YYYY` (`/` and `.` accepted for `-`).
pub fn parse_date(field: &'static str, input: &str) -> Result<Date, IdentifierError> {
    let parts: Vec<&str> = input.trim().split(['-', '/', '.']).collect();
    let numbers = |y: &str, m: &str, d: &str| -> Option<(i32, u8, u8)> {
        let all_digits = [y, m, d]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()));
        if !all_digits || y.len() != 4 || m.is_empty() || m.len() > 2 || d.is_empty() || d.len() > 2
        {
            return None;
        }
        Some((y.parse().ok()?, m.parse().ok()?, d.parse().ok()?))
    };
    let (year, month, day) = match parts.as_slice() {
        [y, m, d] if y.len() == 4 => numbers(y, m, d),
        [d, m, y] if y.len() == 4 => numbers(y, m, d),
        _ => None,
    }
    .ok_or(IdentifierError::DateFormat(field))?;
    let month = Month::try_from(month).map_err(|_| IdentifierError::ImpossibleDate(field))?;
    Date::from_calendar_date(year, month, day).map_err(|_| IdentifierError::ImpossibleDate(field))
}

/// Formats a date as ISO `YYYY-MM-DD`.
pub fn iso_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// A date of birth as registers hold it: the day, or only the month
/// (`YYYY-MM-00`, for someone whose day of birth is unknown).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BirthDate {
    /// The whole date.
    Day(Date),
    /// Year and month; the day unknown.
    Month(i32, Month),
}

impl BirthDate {
    /// Parses a birth date: a whole date, or `YYYY-MM-00` / `00-MM-YYYY`
    /// for an unknown day. A year alone is refused (no key can use it),
    /// and so is a date after `today` or before 1900.
    pub fn parse(input: &str, today: Date) -> Result<BirthDate, IdentifierError> {
        const FIELD: &str = "birth_date";
        let parts: Vec<&str> = input.trim().split(['-', '/', '.']).collect();
        let zero = |p: &str| !p.is_empty() && p.bytes().all(|b| b == b'0');
        let (year, month, day) = match parts.as_slice() {
            [y, m, d] if y.len() == 4 => (*y, *m, *d),
            [d, m, y] if y.len() == 4 => (*y, *m, *d),
            _ => return Err(IdentifierError::DateFormat(FIELD)),
        };
        let birth = if zero(day) {
            if zero(month) {
                return Err(IdentifierError::YearOnly);
            }
            let whole = parse_date(FIELD, &format!("{year}-{month}-01"))?;
            BirthDate::Month(whole.year(), whole.month())
        } else {
            BirthDate::Day(parse_date(FIELD, input)?)
        };
        let first_day = birth.first_day();
        if first_day > today {
            return Err(IdentifierError::FutureDate);
        }
        if first_day.year() < 1900 {
            return Err(IdentifierError::AncientDate);
        }
        Ok(birth)
    }

    /// The day, if known.
    pub fn day(&self) -> Option<Date> {
        match self {
            BirthDate::Day(d) => Some(*d),
            BirthDate::Month(..) => None,
        }
    }

    /// The first day it may be.
    fn first_day(&self) -> Date {
        match self {
            BirthDate::Day(d) => *d,
            BirthDate::Month(y, m) => Date::from_calendar_date(*y, *m, 1).unwrap_or(Date::MIN),
        }
    }

    /// Year and month.
    pub fn year_month(&self) -> (i32, u8) {
        let d = self.first_day();
        (d.year(), u8::from(d.month()))
    }

    /// `YYYY-MM-DD`, or `YYYY-MM-00` for an unknown day.
    pub fn iso(&self) -> String {
        match self {
            BirthDate::Day(d) => iso_date(*d),
            BirthDate::Month(..) => {
                let (y, m) = self.year_month();
                format!("{y:04}-{m:02}-00")
            }
        }
    }
}

/// A surname + first initial + date of birth key, with the first given
/// name where the register knows it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameDobKey {
    surname: String,
    /// Unknown where the register has neither initial nor given name:
    /// then only the weakest family (surname and date) can be asked.
    initial: Option<char>,
    birth: BirthDate,
    given: Option<String>,
}

impl NameDobKey {
    /// Builds a key; `today` bounds the birth date (no I/O here).
    pub fn new(
        surname: &str,
        initial: &str,
        birth_date: &str,
        today: Date,
    ) -> Result<NameDobKey, IdentifierError> {
        NameDobKey::with_given(surname, Some(initial), None, birth_date, today)
    }

    /// Builds a key from a surname, an initial and/or a given name (the
    /// initial is the given name's first letter where only that is
    /// given; unknown where neither is), and a birth date (`YYYY-MM-00`
    /// for an unknown day).
    pub fn with_given(
        surname: &str,
        initial: Option<&str>,
        given: Option<&str>,
        birth_date: &str,
        today: Date,
    ) -> Result<NameDobKey, IdentifierError> {
        if surname.chars().count() > MAX_SURNAME_CHARS {
            return Err(IdentifierError::SurnameTooLong);
        }
        let surname = normalise_surname(surname)?;
        let given = match given {
            Some(g) if g.chars().count() > MAX_SURNAME_CHARS => {
                return Err(IdentifierError::GivenNameTooLong)
            }
            // The first given name: registers agree on it more often
            // than on the others.
            Some(g) => fold(g)
                .split(' ')
                .find(|t| t.chars().any(char::is_alphabetic))
                .map(str::to_owned),
            None => None,
        };
        let initial = match initial.map(fold) {
            Some(folded) if !folded.trim().is_empty() => {
                let mut letters = folded.trim().trim_end_matches('.').chars();
                match (letters.next(), letters.next()) {
                    (Some(c), None) if c.is_alphabetic() => Some(c),
                    _ => return Err(IdentifierError::BadInitial),
                }
            }
            _ => given
                .as_ref()
                .and_then(|g| g.chars().find(|c| c.is_alphabetic())),
        };
        if given
            .as_ref()
            .is_some_and(|g| g.chars().find(|c| c.is_alphabetic()) != initial)
        {
            return Err(IdentifierError::InitialMismatch);
        }
        let birth = BirthDate::parse(birth_date, today)?;
        Ok(NameDobKey {
            surname,
            initial,
            birth,
            given,
        })
    }

    /// The normalised surname.
    pub fn surname(&self) -> &str {
        &self.surname
    }

    /// The initial, if known.
    pub fn initial(&self) -> Option<char> {
        self.initial
    }

    /// The date of birth.
    pub fn birth(&self) -> BirthDate {
        self.birth
    }

    /// The folded first given name, if known.
    pub fn given(&self) -> Option<&str> {
        self.given.as_deref()
    }

    /// `nd:SURNAME,INITIAL,DATE`: the exact key (for a whole date), and
    /// what the node's own index finds a person under.
    fn lookup(&self) -> String {
        let initial = self.initial.map(String::from).unwrap_or_default();
        format!("nd:{},{initial},{}", self.surname, self.birth.iso())
    }
}

impl fmt::Debug for NameDobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NameDobKey(…)")
    }
}

/// One normalised key of a person.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum SubjectKey {
    /// By citizen service number.
    Bsn(Bsn),
    /// By surname, initial and date of birth.
    NameDob(NameDobKey),
}

impl SubjectKey {
    /// The canonical encoding of all the key holds, with its type prefix:
    /// what a store seals, and what [`SubjectKey::parse`] reads back.
    /// Equal persons, equal text.
    pub fn canonical(&self) -> String {
        match self {
            SubjectKey::Bsn(bsn) => format!("bsn:{}", bsn.digits()),
            SubjectKey::NameDob(k) => match &k.given {
                Some(given) => format!("{},{given}", k.lookup()),
                None => k.lookup(),
            },
        }
    }

    /// What the node's own keyed index finds the person under: the BSN,
    /// or surname, initial and date (never the given name, which a
    /// question may not know).
    pub fn lookup(&self) -> String {
        match self {
            SubjectKey::Bsn(_) => self.canonical(),
            SubjectKey::NameDob(k) => k.lookup(),
        }
    }

    /// The exact key family's OPRF input: the BSN, or surname, initial and
    /// a whole date of birth; none for a birth month alone or an unknown
    /// initial.
    pub fn exact_input(&self) -> Option<String> {
        match self {
            SubjectKey::NameDob(k) if k.birth.day().is_none() || k.initial.is_none() => None,
            _ => Some(self.lookup()),
        }
    }

    /// Parses `bsn:DIGITS` or `nd:SURNAME,INITIAL,DATE[,GIVEN_NAME]` (the
    /// surname may itself hold a comma, as in `nd:Jansen, van,J,2010-04-01`;
    /// the initial may be empty when a given name follows).
    pub fn parse(input: &str, today: Date) -> Result<SubjectKey, IdentifierError> {
        let input = input.trim();
        if let Some(bsn) = input.strip_prefix("bsn:") {
            return Ok(SubjectKey::Bsn(Bsn::parse(bsn)?));
        }
        let rest = input
            .strip_prefix("nd:")
            .ok_or(IdentifierError::UnknownKeyType)?;
        let fields: Vec<&str> = rest.split(',').collect();
        let is_date = |f: &str| {
            let f = f.trim();
            !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit() || b"-/.".contains(&b))
        };
        // A given name never looks like a date: the last field says
        // which form this is.
        let (surname, initial, date, given) = match fields.as_slice() {
            [s @ .., i, d] if !s.is_empty() && is_date(d) => (s.join(","), *i, *d, None),
            [s @ .., i, d, g] if !s.is_empty() && is_date(d) => (
                s.join(","),
                *i,
                *d,
                Some(*g).filter(|g| !g.trim().is_empty()),
            ),
            _ => return Err(IdentifierError::UnknownKeyType),
        };
        let initial = Some(initial).filter(|i| !i.trim().is_empty());
        Ok(SubjectKey::NameDob(NameDobKey::with_given(
            &surname, initial, given, date, today,
        )?))
    }
}

impl FromStr for Bsn {
    type Err = IdentifierError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bsn::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 28);

    #[test]
    fn elfproef_accepts_valid_numbers() {
        for valid in [
            "111222333",
            "123456782",
            "010000008",
            "1112.22.333",
            "111 222 333",
            "111-222-333",
        ] {
            assert!(Bsn::parse(valid).is_ok(), "{valid}");
        }
        assert_eq!(Bsn::parse("010000008").unwrap().digits(), "010000008");
    }

    #[test]
    fn elfproef_names_the_reason() {
        let cases = [
            ("123456789", IdentifierError::BsnChecksum),
            ("111222334", IdentifierError::BsnChecksum),
            ("000000000", IdentifierError::BsnChecksum),
            ("12345678", IdentifierError::BsnLength(8)),
            ("1234567890", IdentifierError::BsnLength(10)),
            ("12345678a", IdentifierError::BsnNonDigit(9)),
            ("", IdentifierError::BsnLength(0)),
        ];
        for (input, expected) in cases {
            assert_eq!(Bsn::parse(input).unwrap_err(), expected, "{input:?}");
        }
    }

    #[test]
    fn check_digits_agree_with_the_parser() {
        assert_eq!(elfproef_check_digit(11122233), Some(3));
        assert_eq!(elfproef_check_digit(1000000), Some(8)); // 010000008
        for n in (0..100_000_000u32).step_by(9_973) {
            if let Some(d) = elfproef_check_digit(n) {
                assert!(Bsn::parse(&format!("{n:08}{d}")).is_ok() || n == 0, "{n}");
            }
        }
    }

    #[test]
    fn errors_and_debug_never_show_the_value() {
        let err = Bsn::parse("123456789").unwrap_err().to_string();
        assert!(!err.contains("123456789"), "{err}");
        let bsn = Bsn::parse("123456782").unwrap();
        assert!(!format!("{bsn:?}").contains("123456782"));
        let key = NameDobKey::new("Jansen", "J", "2010-04-01", TODAY).unwrap();
        assert!(!format!("{:?}", SubjectKey::NameDob(key)).contains("jansen"));
    }

    #[test]
    fn particles_move_out_in_every_spelling() {
        for spelling in [
            "van der Berg",
            "Berg, van der",
            "VAN DER BERG",
            "Berg van der",
            "  van  der   Berg ",
        ] {
            assert_eq!(normalise_surname(spelling).unwrap(), "berg", "{spelling:?}");
        }
        assert_eq!(normalise_surname("Jansen, van").unwrap(), "jansen");
        assert_eq!(normalise_surname("van Jansen").unwrap(), "jansen");
        assert_eq!(normalise_surname("'t Hart").unwrap(), "hart");
        assert_eq!(normalise_surname("Çelik-Öztürk").unwrap(), "celik-ozturk");
        assert_eq!(
            normalise_surname("Van").unwrap(),
            "van",
            "a particle alone is a name"
        );
        assert_eq!(
            normalise_surname("  ,  ").unwrap_err(),
            IdentifierError::EmptySurname
        );
    }

    #[test]
    fn letters_nfkd_leaves_alone_are_folded_as_registers_write_them() {
        // Turkish, Balkan, Polish, Scandinavian, German, French spellings
        // against how a Dutch register without those letters writes them.
        for (written, plain) in [
            ("Yıldız", "Yildiz"),
            ("Işık", "Isik"),
            ("Đorđević", "Djordjevic"),
            ("Đurić", "Djuric"),
            ("Łukasiewicz", "Lukasiewicz"),
            ("Wałęsa", "Walesa"),
            ("Søndergaard", "Sondergaard"),
            ("Strauß", "Strauss"),
            ("Ærø", "Aero"),
            ("Cœur", "Coeur"),
            ("Þórsdóttir", "Thorsdottir"),
            ("Məmmədov", "Memmedov"),
            ("Çelik", "Celik"),
            ("Şahin", "Sahin"),
            ("Öztürk", "Ozturk"),
            ("Mehmedović", "Mehmedovic"),
        ] {
            assert_eq!(
                normalise_surname(written).unwrap(),
                normalise_surname(plain).unwrap(),
                "{written} / {plain}"
            );
        }
    }

    #[test]
    fn glued_particles_come_apart() {
        for (glued, apart) in [
            ("Vandenberg", "van den Berg"),
            ("VandenBerg", "van den Berg"),
            ("VanDenBerg", "van den Berg"),
            ("Vandermeer", "van der Meer"),
            ("Vandijk", "van Dijk"),
            ("Vandeven", "van de Ven"),
            ("DeVries", "de Vries"),
            ("TerHorst", "ter Horst"),
            ("VanDerLinden", "Linden, van der"),
        ] {
            assert_eq!(
                normalise_surname(glued).unwrap(),
                normalise_surname(apart).unwrap(),
                "{glued} / {apart}"
            );
        }
        // Names that only look glued stay whole.
        for name in [
            "Dekker",
            "Terpstra",
            "Vance",
            "Vanli",
            "McDonald",
            "MacArthur",
            "Denis",
            "Devries",
        ] {
            assert_eq!(
                normalise_surname(name).unwrap(),
                fold(name).replace(' ', ""),
                "{name}"
            );
        }
    }

    #[test]
    fn given_names_and_birth_months_round_trip() {
        let full = SubjectKey::parse("nd:Jansen,,2010-04-01,Anna Maria", TODAY).unwrap();
        assert_eq!(full.canonical(), "nd:jansen,a,2010-04-01,anna");
        assert_eq!(full.lookup(), "nd:jansen,a,2010-04-01");
        assert_eq!(
            full.exact_input().as_deref(),
            Some("nd:jansen,a,2010-04-01")
        );
        assert_eq!(SubjectKey::parse(&full.canonical(), TODAY).unwrap(), full);
        let month = SubjectKey::parse("nd:Jansen,A,00-04-2010", TODAY).unwrap();
        assert_eq!(month.canonical(), "nd:jansen,a,2010-04-00");
        assert_eq!(month.exact_input(), None, "no exact key without the day");
        assert_eq!(SubjectKey::parse(&month.canonical(), TODAY).unwrap(), month);
        assert_eq!(
            SubjectKey::parse("nd:Jansen,A,2010-00-00", TODAY).unwrap_err(),
            IdentifierError::YearOnly
        );
        assert_eq!(
            SubjectKey::parse("nd:Jansen,B,2010-04-01,Anna", TODAY).unwrap_err(),
            IdentifierError::InitialMismatch
        );
        // Neither initial nor given name: a key, but no exact one.
        let unknown = SubjectKey::parse("nd:Jansen,,2010-04-01", TODAY).unwrap();
        assert_eq!(unknown.canonical(), "nd:jansen,,2010-04-01");
        assert_eq!(unknown.exact_input(), None);
        assert_eq!(
            SubjectKey::parse(&unknown.canonical(), TODAY).unwrap(),
            unknown
        );
        assert_eq!(
            SubjectKey::parse("nd:Jansen,A,2026-12-00", TODAY).unwrap_err(),
            IdentifierError::FutureDate
        );
        let err = SubjectKey::parse("nd:Jansen,B,2010-04-01,Annabel", TODAY)
            .unwrap_err()
            .to_string();
        assert!(!err.to_lowercase().contains("anna"), "{err}");
    }

    #[test]
    fn dates_in_both_orders_and_bad_ones_refused() {
        assert_eq!(
            parse_date("d", "2010-04-01").unwrap(),
            date!(2010 - 04 - 01)
        );
        assert_eq!(
            parse_date("d", "01-04-2010").unwrap(),
            date!(2010 - 04 - 01)
        );
        assert_eq!(parse_date("d", "1-4-2010").unwrap(), date!(2010 - 04 - 01));
        assert_eq!(
            parse_date("d", "2023-02-29"),
            Err(IdentifierError::ImpossibleDate("d"))
        );
        assert_eq!(
            parse_date("d", "2023-13-01"),
            Err(IdentifierError::ImpossibleDate("d"))
        );
        assert_eq!(
            parse_date("d", "20230101"),
            Err(IdentifierError::DateFormat("d"))
        );
        assert_eq!(
            parse_date("d", "01-2023-01"),
            Err(IdentifierError::DateFormat("d"))
        );
        let future = NameDobKey::new("Jansen", "J", "2026-11-29", TODAY);
        assert_eq!(future.unwrap_err(), IdentifierError::FutureDate);
    }

    #[test]
    fn canonical_forms_carry_a_type_prefix() {
        let bsn = SubjectKey::parse("bsn:1112.22.333", TODAY).unwrap();
        assert_eq!(bsn.canonical(), "bsn:111222333");
        let nd = SubjectKey::parse("nd:Jansen, van,J.,01-04-2010", TODAY).unwrap();
        assert_eq!(nd.canonical(), "nd:jansen,j,2010-04-01");
        // A first name is not an initial: "Jan" and "Johan" would both
        // pass as J and match each other's twin.
        assert_eq!(
            SubjectKey::parse("nd:Jansen,Jan,01-04-2010", TODAY).unwrap_err(),
            IdentifierError::BadInitial
        );
        assert_eq!(
            SubjectKey::parse("nd:van Jansen,J,2010-04-01", TODAY).unwrap(),
            nd
        );
        assert_eq!(
            SubjectKey::parse("x:1", TODAY).unwrap_err(),
            IdentifierError::UnknownKeyType
        );
    }

    fn accent(c: char) -> String {
        match c {
            'e' => "é".into(),
            'a' => "ä".into(),
            'o' => "ö".into(),
            'u' => "ü".into(),
            c => c.to_string(),
        }
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(surname in "[A-Za-zéëïöüçÉ' -]{1,30}", initial in "[A-Za-z]", year in 1900i32..2026, day in 1u8..=28, month in 1u8..=12) {
            let date = format!("{year:04}-{month:02}-{day:02}");
            if let Ok(key) = NameDobKey::new(&surname, &initial, &date, TODAY) {
                let once = SubjectKey::NameDob(key).canonical();
                let again = SubjectKey::parse(&once, TODAY).unwrap().canonical();
                prop_assert_eq!(once, again);
            }
        }

        #[test]
        fn equivalent_spellings_agree(base in "[a-z]{2,12}", particle in prop::sample::select(vec!["van", "de", "van der", "ter", "den"]), upper in any::<bool>(), accents in any::<bool>(), spaces in 1usize..4) {
            let name = if accents { base.chars().map(accent).collect() } else { base.clone() };
            let name = if upper { name.to_uppercase() } else { name };
            let sep = " ".repeat(spaces);
            let forward = format!("{particle}{sep}{name}");
            let comma = format!("{name},{sep}{particle}");
            let a = normalise_surname(&forward).unwrap();
            let b = normalise_surname(&comma).unwrap();
            let c = normalise_surname(&base).unwrap();
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(&a, &c);
        }

        #[test]
        fn bsn_separators_do_not_matter(n in 1u32..100_000_000) {
            // Make a valid BSN from 8 digits by choosing the check digit.
            let check = elfproef_check_digit(n);
            prop_assume!(check.is_some());
            let check = check.unwrap();
            let plain = format!("{n:08}{check}");
            let dotted = format!("{}.{}.{}", &plain[..4], &plain[4..6], &plain[6..]);
            prop_assert_eq!(Bsn::parse(&plain).unwrap(), Bsn::parse(&dotted).unwrap());
        }
    }
}
