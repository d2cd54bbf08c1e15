//! The page texts, Dutch (the default, plain B1-level wording) and
//! English: two catalogues with the same keys (a test checks it).

/// The page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Nederlands.
    #[default]
    Nl,
    /// English.
    En,
}

impl Lang {
    /// The `lang` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Nl => "nl",
            Lang::En => "en",
        }
    }

    /// The text under `key`; the key itself where a catalogue lacks it
    /// (a test makes sure none does).
    pub fn t(self, key: &'static str) -> &'static str {
        let catalogue = match self {
            Lang::Nl => NL,
            Lang::En => EN,
        };
        catalogue
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(key, |(_, text)| text)
    }
}

const NL: &[(&str, &str)] = &[
    ("title", "Pluis"),
    ("nav.status", "Overzicht"),
    ("nav.question", "Nieuwe vraag"),
    ("nav.mine", "Mijn vragen"),
    ("nav.about", "Wat deelt Pluis?"),
    ("nav.stop", "Stoppen"),
    ("nav.lang", "English"),
    ("nav.screening", "Screening"),
    ("answer.nothing", "niets gevonden"),
    ("screening.heading", "Screening van uw eigen zaken"),
    ("screening.intro", "Pluis legt alle actieve signalen van uw organisatie naast die van de partners, en laat de zaken van uw organisatie zien met signalen in minstens het gekozen aantal leefgebieden. Partners zien alleen hoeveel sleutels er gevraagd zijn. Dit kan enkele minuten duren."),
    ("screening.min", "Minimaal aantal leefgebieden"),
    ("screening.logged", "De screening wordt vastgelegd bij uw organisatie en bij elke partner, met het doel en de grondslag."),
    ("screening.start", "Screening starten"),
    ("screening.running", "De screening loopt"),
    ("screening.done", "De laatste screening"),
    ("screening.partners_done", "Partners klaar"),
    ("screening.of", "van"),
    ("screening.keys", "Sleutels in de screening"),
    ("screening.wait", "Deze pagina ververst zichzelf. U kunt ook iets anders doen en later terugkomen."),
    ("screening.hits", "Zaken die de drempel halen"),
    ("screening.ref", "Uw zaak"),
    ("screening.none", "Geen zaak haalt de drempel."),
    ("screening.more", "Alleen de eerste 500 zaken staan hier. De hele lijst geeft pluis screen --out."),
    ("screening.failed", "De screening is niet gelukt"),
    ("screening.busy", "Er loopt al een screening. Wacht tot die klaar is."),
    ("advice.discuss", "bespreken in een multidisciplinair casusoverleg"),
    ("advice.watch", "in de gaten houden"),
    ("advice.none", "geen gecombineerd signaal"),
    ("status.heading", "Overzicht"),
    ("status.node", "Uw organisatie"),
    ("status.partners", "Partners"),
    ("status.partner", "Partner"),
    ("status.reachable", "Bereikbaar"),
    ("status.yes", "ja"),
    ("status.no", "nee"),
    ("status.none", "Er zijn geen partners ingesteld."),
    ("question.heading", "Nieuwe vraag"),
    ("question.intro", "Vul het zaaknummer in, kies het doel en vul per persoon een BSN in, of achternaam, voorletter en geboortedatum. De voornaam helpt om andere schrijfwijzen te vinden."),
    ("question.case", "Zaaknummer"),
    ("question.case.hint", "Uw eigen nummer voor deze zaak. Het blijft op uw computer."),
    ("question.purpose", "Doel van de vraag"),
    ("question.basis", "Grondslag"),
    ("question.person", "Persoon"),
    ("question.bsn", "BSN"),
    ("question.surname", "Achternaam"),
    ("question.initial", "Voorletter"),
    ("question.birth", "Geboortedatum (dd-mm-jjjj)"),
    ("question.given", "Voornaam"),
    ("question.next", "Verder"),
    ("question.errors", "Er is iets niet goed ingevuld"),
    ("question.no_persons", "Vul minstens één persoon in."),
    ("question.no_case", "Vul het zaaknummer in."),
    ("question.no_purpose", "Kies een doel."),
    ("bad_form", "Het formulier kwam niet goed aan. Ga terug en probeer het opnieuw."),
    ("question.file", "Of: een zaakbestand"),
    ("question.file.hint", "Een CSV-bestand met de kolommen label,key, zoals voor pluis match --case. Eén regel per sleutel; regels met hetzelfde label zijn één persoon."),
    ("question.file.loaded", "Zaakbestand geladen, aantal personen"),
    ("question.file.drop", "Dit bestand niet gebruiken"),
    ("file.name", "Zaakbestand"),
    ("file.line", "regel"),
    ("file.header", "de eerste regel moet precies label,key zijn"),
    ("file.not_text", "dit is geen CSV-tekstbestand (UTF-8)"),
    ("file.missing", "vul een label en een sleutel in"),
    ("file.fields", "meer dan twee velden: zet een sleutel met komma's tussen dubbele aanhalingstekens (\"nd:…\")"),
    ("file.too_long", "het label of de sleutel is te lang"),
    ("file.too_many", "meer dan 64 personen in één vraag"),
    ("file.too_many_keys", "meer dan 16 sleutels voor één persoon"),
    ("file.key", "sleutel"),
    ("file.empty", "er staan geen personen in het bestand"),
    ("file.too_large", "Zaakbestand: het bestand is groter dan 64 kB"),
    ("confirm.heading", "Klopt dit?"),
    ("confirm.logged", "Uw vraag wordt vastgelegd bij elke partner die Pluis vraagt: wie vroeg, met welk doel en wanneer. Namen en nummers gaan niet naar de partners."),
    ("confirm.persons", "Aantal personen"),
    ("confirm.send", "Vraag stellen"),
    ("confirm.back", "Terug"),
    ("answer.heading", "Antwoord"),
    ("answer.person", "Persoon"),
    ("answer.domains", "Leefgebieden"),
    ("answer.advice", "Advies"),
    ("answer.family", "Het hele gezin"),
    ("answer.partners", "Partners"),
    ("answer.state", "Antwoord"),
    ("answer.no_answer", "Geen antwoord is niet hetzelfde als geen signaal: een partner die niet antwoordde, kan wel iets weten."),
    ("answer.probable", "Waarschijnlijk dezelfde persoon (anders geschreven). Controleer eerst of het echt om deze persoon gaat."),
    ("answer.possible", "Mogelijk dezelfde persoon (het kan ook een broer, zus of tweeling zijn). Er worden geen signalen getoond en dit telt niet mee. Stel een nieuwe vraag met meer gegevens."),
    ("answer.probable.mark", "waarschijnlijk"),
    ("answer.tiers", "Niet zeker dezelfde persoon"),
    ("answer.print", "Afdrukken: gebruik de afdrukfunctie van uw browser. Er staan geen namen of nummers op."),
    ("state.answered", "beantwoord"),
    ("state.denied", "geweigerd"),
    ("state.unreachable", "niet bereikbaar"),
    ("state.timed_out", "te laat"),
    ("state.failed", "mislukt"),
    ("domain.safety", "Veiligheid"),
    ("domain.education", "Onderwijs"),
    ("domain.health", "Gezondheid"),
    ("domain.social", "Sociaal"),
    ("domain.finances", "Financiën"),
    ("domain.housing", "Wonen"),
    ("domain.youth_care", "Jeugdhulp"),
    ("mine.heading", "Mijn vragen"),
    ("mine.none", "U heeft in deze sessie nog geen vragen gesteld."),
    ("mine.time", "Tijd"),
    ("mine.case", "Zaaknummer"),
    ("mine.purpose", "Doel"),
    ("mine.open", "Bekijken"),
    ("about.heading", "Wat deelt Pluis?"),
    ("about.body", "Pluis vraagt partners (politie, gemeente, school, zorg) of zij signalen hebben over de personen in uw vraag. Namen, BSN's en dossiers gaan nooit naar een partner: Pluis stuurt alleen versleutelde sleutels die de partner niet kan terugrekenen. U ziet alleen in welke leefgebieden een partner iets heeft. Elke vraag wordt bij u en bij elke partner vastgelegd, met het doel en de grondslag. Resultaten staan alleen in het geheugen van dit programma en verdwijnen als u stopt."),
    ("stopped", "Pluis is gestopt. U kunt dit venster sluiten."),
    ("denied", "Geen toegang. Start Pluis opnieuw met pluis ui en gebruik de nieuwe link."),
];

const EN: &[(&str, &str)] = &[
    ("title", "Pluis"),
    ("nav.status", "Overview"),
    ("nav.question", "New question"),
    ("nav.mine", "My questions"),
    ("nav.about", "What does Pluis share?"),
    ("nav.stop", "Stop"),
    ("nav.lang", "Nederlands"),
    ("nav.screening", "Screening"),
    ("answer.nothing", "nothing found"),
    ("screening.heading", "Screening your own cases"),
    ("screening.intro", "Pluis puts all of your organisation's active signals beside the partners', and shows your organisation's cases with signals in at least the chosen number of life domains. Partners see only how many keys were asked. This can take a few minutes."),
    ("screening.min", "Fewest life domains"),
    ("screening.logged", "The screening is recorded at your organisation and at every partner, with its purpose and legal basis."),
    ("screening.start", "Start screening"),
    ("screening.running", "The screening is running"),
    ("screening.done", "The last screening"),
    ("screening.partners_done", "Partners done"),
    ("screening.of", "of"),
    ("screening.keys", "Keys in the screening"),
    ("screening.wait", "This page refreshes itself. You can do something else and come back later."),
    ("screening.hits", "Cases that reach the threshold"),
    ("screening.ref", "Your case"),
    ("screening.none", "No case reaches the threshold."),
    ("screening.more", "Only the first 500 cases are shown here. pluis screen --out gives the whole list."),
    ("screening.failed", "The screening did not succeed"),
    ("screening.busy", "A screening is already running. Wait until it is done."),
    ("advice.discuss", "discuss in a multidisciplinary case meeting"),
    ("advice.watch", "watch"),
    ("advice.none", "no combined signal"),
    ("status.heading", "Overview"),
    ("status.node", "Your organisation"),
    ("status.partners", "Partners"),
    ("status.partner", "Partner"),
    ("status.reachable", "Reachable"),
    ("status.yes", "yes"),
    ("status.no", "no"),
    ("status.none", "No partners are configured."),
    ("question.heading", "New question"),
    ("question.intro", "Enter the case number, choose the purpose and give each person's BSN, or surname, initial and date of birth. The first name helps to find other spellings."),
    ("question.case", "Case number"),
    ("question.case.hint", "Your own number for this case. It stays on your computer."),
    ("question.purpose", "Purpose of the question"),
    ("question.basis", "Legal basis"),
    ("question.person", "Person"),
    ("question.bsn", "BSN"),
    ("question.surname", "Surname"),
    ("question.initial", "Initial"),
    ("question.birth", "Date of birth (dd-mm-yyyy)"),
    ("question.given", "First name"),
    ("question.next", "Next"),
    ("question.errors", "Something is not filled in correctly"),
    ("question.no_persons", "Fill in at least one person."),
    ("question.no_case", "Fill in the case number."),
    ("question.no_purpose", "Choose a purpose."),
    ("bad_form", "The form did not arrive intact. Go back and try again."),
    ("question.file", "Or: a case file"),
    ("question.file.hint", "A CSV file with the columns label,key, as for pluis match --case. One line per key; lines with the same label are one person."),
    ("question.file.loaded", "Case file loaded, number of persons"),
    ("question.file.drop", "Do not use this file"),
    ("file.name", "Case file"),
    ("file.line", "line"),
    ("file.header", "the first line must be exactly label,key"),
    ("file.not_text", "this is not a CSV text file (UTF-8)"),
    ("file.missing", "give a label and a key"),
    ("file.fields", "more than two fields: put a key that holds commas in double quotes (\"nd:…\")"),
    ("file.too_long", "the label or the key is too long"),
    ("file.too_many", "more than 64 persons in one question"),
    ("file.too_many_keys", "more than 16 keys for one person"),
    ("file.key", "key"),
    ("file.empty", "there are no persons in the file"),
    ("file.too_large", "Case file: the file is larger than 64 kB"),
    ("confirm.heading", "Is this right?"),
    ("confirm.logged", "Your question is recorded at every partner Pluis asks: who asked, for what purpose and when. Names and numbers do not go to the partners."),
    ("confirm.persons", "Number of persons"),
    ("confirm.send", "Ask"),
    ("confirm.back", "Back"),
    ("answer.heading", "Answer"),
    ("answer.person", "Person"),
    ("answer.domains", "Life domains"),
    ("answer.advice", "Advice"),
    ("answer.family", "The whole family"),
    ("answer.partners", "Partners"),
    ("answer.state", "Answer"),
    ("answer.no_answer", "No answer is not the same as no signal: a partner that did not answer may still know something."),
    ("answer.probable", "Probably the same person (written differently). Check first that it really is this person."),
    ("answer.possible", "Possibly the same person (it could also be a brother, sister or twin). No signals are shown and it does not count. Ask again with more details."),
    ("answer.probable.mark", "probable"),
    ("answer.tiers", "Not certainly the same person"),
    ("answer.print", "To print, use your browser's print function. No names or numbers are on it."),
    ("state.answered", "answered"),
    ("state.denied", "refused"),
    ("state.unreachable", "unreachable"),
    ("state.timed_out", "too late"),
    ("state.failed", "failed"),
    ("domain.safety", "Safety"),
    ("domain.education", "Education"),
    ("domain.health", "Health"),
    ("domain.social", "Social"),
    ("domain.finances", "Finances"),
    ("domain.housing", "Housing"),
    ("domain.youth_care", "Youth care"),
    ("mine.heading", "My questions"),
    ("mine.none", "You have not asked any questions in this session yet."),
    ("mine.time", "Time"),
    ("mine.case", "Case number"),
    ("mine.purpose", "Purpose"),
    ("mine.open", "View"),
    ("about.heading", "What does Pluis share?"),
    ("about.body", "Pluis asks partners (police, municipality, school, care) whether they have signals about the persons in your question. Names, BSNs and files never go to a partner: Pluis sends only encrypted keys the partner cannot reverse. You see only in which life domains a partner has something. Every question is recorded at your node and at every partner, with its purpose and legal basis. Results are kept only in this program's memory and are gone when you stop."),
    ("stopped", "Pluis has stopped. You can close this window."),
    ("denied", "No access. Start Pluis again with pluis ui and use the new link."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogues_have_the_same_keys_and_no_empty_text() {
        fn keys(c: &[(&'static str, &'static str)]) -> Vec<&'static str> {
            let mut k: Vec<&str> = c.iter().map(|(k, _)| *k).collect();
            k.sort_unstable();
            k
        }
        assert_eq!(keys(NL), keys(EN));
        let mut unique = keys(NL);
        unique.dedup();
        assert_eq!(unique.len(), NL.len(), "a key appears twice");
        assert!(NL.iter().chain(EN).all(|(_, t)| !t.trim().is_empty()));
        assert_eq!(Lang::Nl.t("nav.stop"), "Stoppen");
        assert_eq!(Lang::En.t("nav.stop"), "Stop");
    }
}
