//! Synthetic signals for demos, tests and benchmarks: `pluis-node gen-data`.
//!
//! Every organisation draws from one shared synthetic population made from
//! the seed, so files made for several organisations with the same seed
//! overlap the way real caseloads do: some children are known to several
//! partners, most to one. Each organisation records signals of its own
//! domains (police: safety; school: education; …). The population is made
//! up; its BSNs pass the elfproef but belong to nobody known.
//!
//! The generator is a small deterministic mixer (SplitMix64): reproducible
//! data, not cryptography.

use std::io::Write;

use pluis_proto::identifier::{elfproef_check_digit, iso_date};
use pluis_proto::taxonomy::{LifeDomain, Taxonomy};
use time::{Date, Duration};

const SURNAMES: &[&str] = &[
    "de Jong",
    "Jansen",
    "de Vries",
    "van den Berg",
    "van Dijk",
    "Bakker",
    "Janssen",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "de Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "van Leeuwen",
    "Dekker",
    "Brouwer",
    "de Wit",
    "Dijkstra",
    "Smits",
    "de Graaf",
    "van der Meer",
    "Yılmaz",
    "Öztürk",
    "El Amrani",
    "Bouzid",
    "Çelik",
    "Nguyen",
    "Kowalski",
    "Pinas",
    "Martina",
    "Sedney",
    "Kaya",
    "Demir",
    "Haddou",
    "Şahin",
    "Sarmo",
];

/// SplitMix64 of a word: a well-mixed 64-bit value.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5eed, |acc, p| mix(acc ^ mix(*p)))
}

fn org_word(org: &str) -> u64 {
    org.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One synthetic person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// A BSN that passes the elfproef.
    pub bsn: String,
    /// Surname, as a clerk would type it.
    pub surname: String,
    /// First initial.
    pub initial: char,
    /// Date of birth.
    pub birth_date: Date,
}

/// Person `index` of the population made from `seed`.
pub fn person(seed: u64, index: u64, today: Date) -> Person {
    let h = hash(&[seed, index, 1]);
    // Eight digits, then the check digit that makes the elfproef pass;
    // where that would be 10, the next prefix is taken.
    let mut prefix = (h % 90_000_000) as u32 + 10_000_000;
    let bsn = loop {
        if let Some(check) = elfproef_check_digit(prefix) {
            break format!("{prefix}{check}");
        }
        prefix += 1;
    };
    let h2 = hash(&[seed, index, 2]);
    let surname = SURNAMES[(h2 % SURNAMES.len() as u64) as usize].to_owned();
    let initial = char::from(b'A' + ((h2 >> 16) % 26) as u8);
    // Minors: born 1 to 17 years ago.
    let age_days = 365 + (h2 >> 24) % (16 * 365);
    Person {
        bsn,
        surname,
        initial,
        birth_date: today - Duration::days(age_days as i64),
    }
}

/// The life domains an organisation records, by its org id.
pub fn domains_of(org: &str) -> Vec<LifeDomain> {
    use LifeDomain::*;
    match org {
        "police" => vec![Safety],
        "school" | "education" => vec![Education],
        "healthcare" | "health" => vec![Health],
        "municipality" => vec![Social, Finances, Housing],
        "youthcare" | "youth_care" => vec![YouthCare],
        _ => LifeDomain::ALL.to_vec(),
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Data rows to write.
    pub rows: u64,
    /// The population seed; the same seed gives overlapping populations.
    pub seed: u64,
    /// The organisation the rows are for.
    pub org: String,
    /// Population size (default: 2 × rows, at least 1,000).
    pub population: Option<u64>,
    /// Dates are drawn relative to this day.
    pub today: Date,
}

/// Writes `options.rows` rows of import CSV.
pub fn generate(
    taxonomy: &Taxonomy,
    options: &GenOptions,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let population = options
        .population
        .unwrap_or((options.rows * 2).max(1_000))
        .max(1);
    let org = org_word(&options.org);
    let signals: Vec<&str> = taxonomy
        .domains()
        .iter()
        .filter(|d| domains_of(&options.org).contains(&d.code))
        .flat_map(|d| d.signals.iter().map(|s| s.code.as_str()))
        .collect();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    writeln!(
        out,
        "bsn,surname,initial,birth_date,signal,registered_on,local_ref"
    )?;
    for row in 0..options.rows {
        let h = hash(&[options.seed, org, row]);
        let index = h % population;
        let p = person(options.seed, index, options.today);
        let signal = signals[((h >> 20) % signals.len().max(1) as u64) as usize];
        let registered = options.today - Duration::days(((h >> 40) % 300) as i64);
        // Most rows carry a BSN; some also a name key, some only a name key.
        let (bsn, name) = match (h >> 8) % 10 {
            0 => ("", true),
            1 | 2 => (p.bsn.as_str(), true),
            _ => (p.bsn.as_str(), false),
        };
        let (surname, initial, birth) = if name {
            (
                p.surname.as_str(),
                p.initial.to_string(),
                iso_date(p.birth_date),
            )
        } else {
            ("", String::new(), String::new())
        };
        writeln!(
            out,
            "{bsn},{surname},{initial},{birth},{signal},{},{}-{row:08}",
            iso_date(registered),
            options.org
        )?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pluis_proto::identifier::Bsn;
    use time::macros::date;

    #[test]
    fn people_are_reproducible_and_valid() {
        let today = date!(2026 - 11 - 28);
        for i in 0..1_000 {
            let p = person(7, i, today);
            assert!(Bsn::parse(&p.bsn).is_ok(), "{i}");
            assert!(p.birth_date < today);
            assert_eq!(p, person(7, i, today));
        }
        assert_ne!(person(7, 1, today), person(8, 1, today));
    }
}
