"""Claims a small model invents: the ``invented_claim`` check, grounding's risky claims widened.

grounding.RISKY_CLAIMS holds the regulated and superlative claims ("best", "guaranteed",
"free"). The editor's rejections show a second family the model adds to innocent briefs:
exclusivity ("exclusive discounts"), luxury and premium positioning, "most advanced",
"ultimate", "unlimited riding", "revolutionary", "world-class", availability and delivery
promises ("in stock", "delivered daily", "same-day"), offers the brief never made ("discounts",
"special offer"), urgency and scarcity ("limited time", "only 3 left", "hurry", "today only"),
and attributes nobody stated ("eco-friendly", "organic"). ``INVENTED_CLAIMS`` has the same
shape and the same rule as RISKY_CLAIMS: a claim is supported when its pattern matches the
brief (above all its facts), one table per language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from copygen.copywriting.grounding import Evidence
from copygen.domain import Flag

_EN = (
    ("exclusive", r"\bexclusive(?:ly)?\b|\bexclusivity\b|\bmembers[\s-]only\b"),
    ("luxury", r"\bluxur(?:y|ious|iously)\b|\bluxe\b|\bpremium\b|\bhigh[\s-]end\b|\bupscale\b"
               r"|\bdeluxe\b|\belite\b|\bprestigious\b|\bgourmet\b"),
    ("superlative", r"\bmost\s+(?:advanced|innovative|powerful|reliable|trusted|popular|effective"
                    r"|efficient|accurate|secure|stylish|talented|experienced|comfortable"
                    r"|affordable|beautiful|delicious)\b|\bultimate\b|\btop[\s-](?:notch|tier"
                    r"|quality|rated)\b|\bhighest[\s-](?:rated|quality)\b|\bbest[\s-]selling\b"
                    r"|\bbestsellers?\b|\b(?:market|industry|world)[\s-]leading\b"
                    r"|\bleading\s+(?:provider|brand|company|platform|expert|leader)s?\b"),
    ("unlimited", r"\bunlimited\b|\blimitless\b|\binfinite\b|\bendless\s+(?:supply|access)\b"),
    ("revolutionary", r"\brevolution(?:ary|i[sz]e[sd]?|i[sz]ing)\b|\bgame[\s-]chang(?:er|ing)\b"
                      r"|\bgroundbreaking\b|\bcutting[\s-]edge\b|\bstate[\s-]of[\s-]the[\s-]art\b"
                      r"|\bbreakthrough\b|\bfirst[\s-]ever\b"),
    ("world-class", r"\bworld[\s-]class\b|\bworld'?s\s+(?:largest|biggest|greatest|finest|top)\b"
                    r"|\bbest[\s-]in[\s-]class\b|\b(?:five|5)[\s-]star\b|\bawards?\b"),
    ("availability", r"\bin\s+stock\b|\b(?:now|always)\s+available\b|\bavailable\s+(?:now|today"
                     r"|24/7)\b|\bback\s+in\s+stock\b|\baround\s+the\s+clock\b|\b24/7\b"
                     r"|\bopen\s+(?:every\s+day|daily|late)\b"),
    ("delivery", r"\bdeliver(?:ed|s|y|ies)?\s+(?:daily|today|tomorrow|overnight|same[\s-]day"
                 r"|next[\s-]day|(?:right\s+|straight\s+)?to\s+your\s+door(?:step)?|by\s+air)\b"
                 r"|\bsame[\s-]day\b|\bnext[\s-]day\b|\bfree\s+(?:shipping|delivery|returns)\b"
                 r"|\bships?\s+(?:free|today|fast|worldwide)\b|\bfast\s+(?:shipping|delivery)\b"
                 r"|\bdoorstep\b|\bovernight\s+(?:shipping|delivery)\b|\bhome\s+delivery\b"),
    ("offer", r"\bdiscount(?:s|ed)?\b|\bon\s+sale\b|\bspecial\s+offers?\b|\bcashback\b"
              r"|\bcoupons?\b|\bhalf[\s-]price\b|\bcomplimentary\b|\bgiveaways?\b|\bprizes?\b"
              r"|\bfree\s+trials?\b|\bbonus\b|\bbogo\b|\bsave\s+big\b|\bdeals?\s+of\s+the\b"),
    ("urgency", r"\blimited[\s-]time\b|\bhurry\b|\b(?:today|tonight)\s+only\b|\bends\s+(?:today"
                r"|tonight|soon|at\s+midnight)\b|\blast\s+chance\b|\bact\s+(?:now|fast)\b"
                r"|\bwhile\s+(?:stocks?|supplies)\s+lasts?\b|\bbefore\s+it'?s\s+gone\b"
                r"|\bnow\s+or\s+never\b|\bfor\s+a\s+limited\s+time\b"),
    ("scarcity", r"\bonly\s+\d+\s+(?:left|remaining|spots?|seats?|places?)\b|\b(?:few|limited)"
                 r"\s+(?:spots?|seats?|places?|stock|supply|availability)\b|\bselling\s+fast\b"
                 r"|\balmost\s+gone\b|\blimited\s+edition\b|\bsold\s+out\b"),
    ("attribute", r"\beco[\s-]?friendly\b|\benvironmentally\s+friendly\b|\bsustainabl[ey]\b"
                  r"|\borganic\b|\ball[\s-]natural\b|\bnon[\s-]toxic\b|\bhypoallergenic\b"
                  r"|\bhandmade\b|\bhand[\s-]crafted\b|\bcertified\b"),
    # Chosen on the gold set's calibration split (docs/quality.md, "Worth checks"): among
    # variants passing every other rule, 0 of 16 with "amazing", 0 of 7 with "easy", 1 of 18
    # with "new" and 0 of 10 with "tomorrow" were usable (32% of all were).
    ("puffery", r"\bamazing\b|\beasy\b"),
    ("novelty", r"\bnew\b"),
    ("timing", r"\btomorrow\b"),
)  # fmt: skip
#: Invented claims per language: (name, pattern), matched like grounding.RISKY_CLAIMS.
INVENTED_CLAIMS: dict[str, tuple[tuple[str, str], ...]] = {
    "en": _EN,
    "de": (
        ("exclusive", r"\bexklusiv\w*"),
        ("luxury", r"\bluxus\w*|\bluxuriös\w*|\bpremium\b|\bedel\w*"),
        ("superlative", r"\bfortschrittlichste\w*|\bultimativ\w*|\bführende\w*"),
        ("unlimited", r"\bunbegrenzt\w*|\bunendlich\w*|\bgrenzenlos\w*"),
        ("revolutionary", r"\brevolution(?:är|ier)\w*|\bbahnbrechend\w*"),
        ("world-class", r"\bweltklasse\b|\bweltbeste\w*|\bpreisgekrönt\w*"),
        ("availability", r"\bauf\s+lager\b|\bsofort\s+(?:lieferbar|verfügbar)\b"
                         r"|\brund\s+um\s+die\s+uhr\b"),
        ("delivery", r"\bversandkostenfrei\b|\bkostenlose[rn]?\s+(?:versand|lieferung)\b"
                     r"|\bnoch\s+heute\s+geliefert\b|\blieferung\s+am\s+selben\s+tag\b"),
        ("offer", r"\brabatt\w*|\bsonderangebot\w*|\bgutschein\w*"),
        ("urgency", r"\bnur\s+heute\b|\bbegrenzte\s+zeit\b|\bbeeil\w*|\bletzte\s+chance\b"),
        ("scarcity", r"\bnur\s+noch\s+\d+\b|\bausverkauft\b|\blimitiert\w*"),
        ("attribute", r"\bumweltfreundlich\w*|\bnachhaltig\w*|\bbio\b|\bhandgemacht\w*"),
    ),
    "fr": (
        ("exclusive", r"\bexclusi(?:f|ve|fs|ves|vement|vité)\b"),
        ("luxury", r"\bluxe\b|\bluxueu(?:x|se|ses)\b|\bpremium\b|\bhaut\s+de\s+gamme\b"),
        ("superlative", r"\ble\s+plus\s+(?:avancé|innovant|puissant)\b|\bultime\b|\bleader\b"),
        ("unlimited", r"\billimité(?:e|s|es)?\b|\bsans\s+limite\b"),
        ("revolutionary", r"\brévolutionnaire\w*|\brévolutionne\w*"),
        ("world-class", r"\bde\s+classe\s+mondiale\b|\bprimé(?:e|s|es)?\b"),
        ("availability", r"\ben\s+stock\b|\bdisponible\s+(?:maintenant|immédiatement)\b"
                         r"|\b24\s?h/24\b"),
        ("delivery", r"\blivraison\s+(?:gratuite|offerte|express|le\s+jour\s+même)\b"
                     r"|\blivré(?:e|s|es)?\s+(?:demain|aujourd'hui|chez\s+vous)\b"),
        ("offer", r"\bremises?\b|\bpromo(?:tion)?s?\b|\bsoldes\b|\bcode\s+promo\b"),
        ("urgency", r"\baujourd'hui\s+seulement\b|\boffre\s+limitée\b|\bdépêchez-vous\b"
                    r"|\bdernière\s+chance\b"),
        ("scarcity", r"\bplus\s+que\s+\d+\b|\bépuisé(?:e|s|es)?\b|\bédition\s+limitée\b"),
        ("attribute", r"\bécologique\w*|\bdurable\w*|\bbio(?:logique)?\b|\bfait\s+main\b"),
    ),
    "es": (
        ("exclusive", r"\bexclusiv(?:o|a|os|as|amente|idad)\b"),
        ("luxury", r"\blujo\b|\blujos[oa]s?\b|\bpremium\b|\bde\s+alta\s+gama\b"),
        ("superlative", r"\bel\s+más\s+(?:avanzado|innovador|potente)\b|\bdefinitiv[oa]\b"
                        r"|\blíder\b"),
        ("unlimited", r"\bilimitad[oa]s?\b|\bsin\s+límites?\b"),
        ("revolutionary", r"\brevolucionari[oa]s?\b|\brevoluciona\w*"),
        ("world-class", r"\bde\s+clase\s+mundial\b|\bpremiad[oa]s?\b"),
        ("availability", r"\ben\s+stock\b|\bdisponible\s+(?:ya|ahora|hoy)\b|\b24\s+horas\b"),
        ("delivery", r"\benvío\s+(?:gratis|gratuito|express)\b"
                     r"|\bentrega\s+(?:el\s+mismo\s+día|inmediata)\b|\ba\s+domicilio\b"),
        ("offer", r"\bdescuentos?\b|\bofertas?\b|\brebajas\b|\bpromoci(?:ón|ones)\b"),
        ("urgency", r"\bsolo\s+hoy\b|\btiempo\s+limitado\b|\bdate\s+prisa\b"
                    r"|\búltima\s+oportunidad\b"),
        ("scarcity", r"\bquedan\s+(?:solo\s+)?\d+\b|\bagotad[oa]s?\b|\bedición\s+limitada\b"),
        ("attribute", r"\becológic[oa]s?\b|\bsostenibles?\b|\borgánic[oa]s?\b|\bartesanal\w*"),
    ),
}  # fmt: skip
_COMPILED = {
    language: tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in table)
    for language, table in INVENTED_CLAIMS.items()
}


def invented_claims(
    text: str, evidence: Evidence, languages: Iterable[str] = ()
) -> tuple[Flag, ...]:
    """An ``invented_claim`` flag for each claim of ``text`` the brief does not make, by the
    tables of the brief's language and of ``languages`` (those the text is in)."""
    tables = [_COMPILED.get(lang) for lang in dict.fromkeys((evidence.language, *languages))]
    found = [
        match.group()
        for table in (tables if any(tables) else [_COMPILED["en"]])
        for _, pattern in table or ()
        for match in pattern.finditer(text)
        if not pattern.search(evidence.text)
    ]
    return tuple(Flag("invented_claim", piece) for piece in dict.fromkeys(found))
