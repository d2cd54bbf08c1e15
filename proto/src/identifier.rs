//! Person identifiers, normalised so that two organisations that know the
//! same person produce the same bytes — the bytes that go into the OPRF.
//!
//! Two kinds of key exist:
//! * [`Bsn`]: the Dutch citizen service number, 9 digits passing the
//!   elfproef (11-check); canonical form `bsn:123456782`;
//! * [`NameDobKey`]: surname (Unicode-folded, tussenvoegsels moved out),
//!   first initial and date of birth; canonical form
//!   `nd:jansen,j,2010-04-01`.
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
    #[error("key: expected bsn:DIGITS or nd:SURNAME,INITIAL,DATE")]
    UnknownKeyType,
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

/// Folds a name: NFKD, combining marks removed, lowercase, only letters,
/// digits, apostrophes and hyphens kept, whitespace collapsed.
fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending_space = false;
    for c in name.nfkd().filter(|c| !is_combining_mark(*c)) {
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
    let folded = fold(main);
    let mut tokens: Vec<&str> = folded.split(' ').filter(|t| !t.is_empty()).collect();
    // Leading particles ("van der Berg"); keep at least one token.
    while tokens.len() > 1 && is_particle(tokens[0]) {
        tokens.remove(0);
    }
    // Trailing particles, where a comma was lost ("Berg van der").
    while tokens.len() > 1 && tokens.last().is_some_and(|t| is_particle(t)) {
        tokens.pop();
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

/// A surname + first initial + date of birth key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameDobKey {
    surname: String,
    initial: char,
    birth_date: Date,
}

impl NameDobKey {
    /// Builds a key; `today` bounds the birth date (no I/O here).
    pub fn new(
        surname: &str,
        initial: &str,
        birth_date: &str,
        today: Date,
    ) -> Result<NameDobKey, IdentifierError> {
        if surname.chars().count() > MAX_SURNAME_CHARS {
            return Err(IdentifierError::SurnameTooLong);
        }
        let surname = normalise_surname(surname)?;
        let folded = fold(initial);
        let mut letters = folded.trim().trim_end_matches('.').chars();
        let initial = match (letters.next(), letters.next()) {
            (Some(c), None) if c.is_alphabetic() => c,
            _ => return Err(IdentifierError::BadInitial),
        };
        let birth_date = parse_date("birth_date", birth_date)?;
        if birth_date > today {
            return Err(IdentifierError::FutureDate);
        }
        if birth_date.year() < 1900 {
            return Err(IdentifierError::AncientDate);
        }
        Ok(NameDobKey {
            surname,
            initial,
            birth_date,
        })
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
    /// The canonical encoding, with its type prefix: what goes into the
    /// OPRF and the local keyed index. Equal persons, equal bytes.
    pub fn canonical(&self) -> String {
        match self {
            SubjectKey::Bsn(bsn) => format!("bsn:{}", bsn.digits()),
            SubjectKey::NameDob(k) => {
                format!("nd:{},{},{}", k.surname, k.initial, iso_date(k.birth_date))
            }
        }
    }

    /// Parses `bsn:DIGITS` or `nd:SURNAME,INITIAL,DATE` (the surname may
    /// itself hold a comma, as in `nd:Jansen, van,J,2010-04-01`).
    pub fn parse(input: &str, today: Date) -> Result<SubjectKey, IdentifierError> {
        let input = input.trim();
        if let Some(bsn) = input.strip_prefix("bsn:") {
            return Ok(SubjectKey::Bsn(Bsn::parse(bsn)?));
        }
        let rest = input
            .strip_prefix("nd:")
            .ok_or(IdentifierError::UnknownKeyType)?;
        let mut fields = rest.rsplitn(3, ',');
        let (date, initial, surname) = match (fields.next(), fields.next(), fields.next()) {
            (Some(d), Some(i), Some(s)) => (d, i, s),
            _ => return Err(IdentifierError::UnknownKeyType),
        };
        Ok(SubjectKey::NameDob(NameDobKey::new(
            surname, initial, date, today,
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
