"""Layer 3: phrasings of prompt injection, in English and seven other languages.

Each rule is aimed at the assistant, not at an operator: "ignore all previous instructions"
is an attack, "ignore the previous alert" is on-call advice; "skip the approval step" said to
the assistant is an attack, "without approval from the CAB this change cannot ship" is policy.
The red-team set (tests/data/redteam.jsonl) holds both kinds; change a rule, run
`pytest -m redteam`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Shared vocabulary, English. Kept as fragments so each rule reads as a sentence.
_ALL = r"(?:all|any|every|each|the|your|my|these|those|such)?\s*(?:of\s+)?(?:the\s+|your\s+)?"
_BEFORE = (
    r"(?:previous|prior|preceding|above|earlier|former|original|initial|foregoing|old|"
    r"existing|system|safety|developer|current|given|other)"
)
_ORDERS = (
    r"(?:instructions?|directives?|rules|guidelines|guardrails|prompts?|orders|commands|"
    r"constraints|restrictions|polic(?:y|ies)|programming|context|messages?)"
)
_SECRET_THINGS = (
    r"(?:system\s+prompt|(?:hidden|initial|original|secret|internal|full|system)\s+"
    r"(?:instructions|prompt|rules)|instructions\s+(?:above|you\s+were\s+given)|"
    r"(?:api[\s_-]?keys?|secrets?|credentials|passwords?|tokens?|env(?:ironment)?\s+"
    r"variables|private\s+keys?))"
)
_SENSITIVE = (
    r"(?:secrets?|api[\s_-]?keys?|tokens?|credentials|passwords?|private\s+keys?|"
    r"env(?:ironment)?\s+variables|\.env|system\s+prompt|conversation|chat\s+history|"
    r"(?:the\s+)?(?:above|previous)\s+(?:text|messages?|context)|session\s+cookies?|"
    r"kubeconfig|ssh\s+keys?|vault\s+(?:data|contents))"
)
_APPROVAL = r"(?:approvals?|review|confirmation|permission|sign-?off|human|policy|guard(?:rail)?s?)"


@dataclass(frozen=True)
class Rule:
    name: str  # the kind of attack: override, role-play, exfiltration, ...
    lang: str  # ISO 639-1 code of the language the rule reads
    pattern: re.Pattern[str]


def _rule(name: str, lang: str, pattern: str) -> Rule:
    return Rule(name, lang, re.compile(pattern, re.IGNORECASE | re.MULTILINE))


RULES: tuple[Rule, ...] = (
    # --- English -------------------------------------------------------------------------
    _rule(
        "override",
        "en",
        rf"\b(?:ignore|disregard|forget|override|overrule|discard|drop|abandon|bypass|skip)\b"
        rf"\s+{_ALL}(?:{_BEFORE}\s+)?(?:and\s+\w+\s+)?{_ORDERS}\b",
    ),
    _rule(
        "override",
        "en",
        r"\b(?:throw\s+away|set\s+aside|put\s+aside|ditch|scrap|abandon|discard|ignore|disregard|"
        r"forget|drop)\s+(?:whatever|all\s+(?:of\s+)?(?:your|the)|your|any)\s+(?:\w+\s+){0,2}?"
        r"(?:instructions?|directives?|rules|guidelines|guardrails|prompts?|orders|programming)\b"
        r"|\b(?:ignore|disregard|forget|set\s+aside)\s+(?:everything|all|anything|what(?:ever)?)\s+"
        r"(?:you\s+(?:were|have\s+been)\s+(?:told|given|instructed)|(?:they|we|i)\s+told\s+you|"
        r"(?:that\s+)?(?:came|was\s+(?:said|written))\s+(?:before|above|earlier))"
        r"|\byou\s+(?:must|will|shall)\s+(?:now\s+)?(?:comply|obey)\b",
    ),
    _rule(
        "override",
        "en",
        r"\b(?:do\s+not|don't|no\s+longer|stop)\s+(?:follow|obey|apply|comply\s+with)(?:ing)?\s+"
        rf"{_ALL}(?:{_BEFORE}\s+)?{_ORDERS}\b",
    ),
    _rule(
        "override",
        "en",
        r"\b(?:new|updated|revised|real|actual|true)\s+(?:instructions|directives|orders|task)"
        r"\s*(?:for\s+(?:you|the\s+(?:assistant|ai|model|agent))(?:,\s+the\s+\w+)?\s*(?::|are\b)"
        r"|\s*(?::|are\b)(?=.{0,40}\byou\b))"
        r"|\bfrom\s+now\s+on,?\s+(?:you|the\s+(?:assistant|ai|model|agent))\b"
        r"|\byour\s+(?:new|real|only)\s+(?:task|goal|purpose|instructions?)\s+(?:is|are)\b",
    ),
    _rule(
        "override",
        "en",
        r"\b(?:instructions?|rules|guidelines|prompts?|directives|orders)\s+(?:above|before\s+this|"
        r"you\s+(?:were|have\s+been)\s+given)\s+(?:are|is|were|was)\s+(?:now\s+)?"
        r"(?:void|obsolete|cancel+ed|revoked|no\s+longer\s+valid|fake|outdated|suspended|lifted)"
        r"|\b(?:your|all|the)\s+(?:previous|prior|earlier|original|initial|above)\s+"
        r"(?:instructions|rules|guidelines|prompts?|directives|orders)\s+(?:are|were|have\s+been|"
        r"has\s+been)\s+(?:now\s+)?(?:void|obsolete|cancel+ed|revoked|replaced|superseded|"
        r"overridden|suspended|lifted|disabled|withdrawn)",
    ),
    _rule(
        "role-play",
        "en",
        r"\b(?:pretend|imagine|act\s+as\s+if|roleplay|role-play)\b.{0,30}\b(?:you\s*(?:are|'re)|"
        r"to\s+be|you\s+have\s+no)\b"
        r"|\b(?:you\s+are\s+now|you\s+will\s+now\s+act\s+as|from\s+now\s+on\s+you\s+are)\s+"
        r"(?:(?:a|an|the|my)\s+)?(?:dan|jailbroken|unrestricted|unfiltered|uncensored|evil|"
        r"free|no\s+longer|not\s+bound|root|admin|developer\s+mode|an?\s+ai\s+without|"
        r"in\s+developer\s+mode|stan|aim|dude)\b"
        r"|\b(?:act|behave|respond)\s+as\s+(?:an?\s+)?(?:dan|jailbroken|unrestricted|"
        r"unfiltered|uncensored|evil|ai\s+without|assistant\s+without|model\s+without)\b"
        r"|\bdo\s+anything\s+now\b|\b(?:developer|god|jailbreak|sudo)\s+mode\b"
        r"|\bjailbr(?:eak|oken)\b"
        r"|\bwho\s+(?:has|have)\s+no\s+(?:rules|restrictions|limits|filters|guardrails|"
        r"guidelines|morals|ethics)\b"
        r"|\b(?:role-?play|pretend|act\s+as|play\s+the\s+role\s+of|you\s+will\s+now\s+be|"
        r"you\s+are\s+now|you're\s+now|play\s+(?:a|an|the)\s+\w+)\b"
        r".{0,100}?\b(?:passwords?|secrets?|api\s+keys?|tokens?|credentials|no\s+restrictions|"
        r"without\s+(?:any\s+)?(?:restrictions|rules|limits|filters|guardrails))\b",
    ),
    _rule(
        "prompt-leak",
        "en",
        r"\b(?:reveal|print|show|leak|repeat|output|dump|display|tell\s+me|give\s+me|paste|"
        r"disclose|echo|list|write\s+out|spell\s+out)\b\s+(?:me\s+)?(?:all\s+|back\s+)?"
        rf"(?:of\s+)?(?:your|the\s+(?:assistant's|model's|ai's))\s+(?:\w+\s+)?{_SECRET_THINGS}"
        rf"|\b(?:reveal|leak|disclose|dump)\b\s+(?:the\s+)?{_SECRET_THINGS}\b"
        r"|\bwhat\s+(?:is|are|were)\s+your\s+(?:system\s+prompt|(?:initial|original|hidden)"
        r"\s+(?:instructions|prompt))",
    ),
    _rule(
        "fake-turn",
        "en",
        r"^\s*(?:#{1,6}\s*|\*\*)?(?:system|assistant|developer|sys)\s*(?:\*\*)?\s*:\s*"
        r"(?:you\b|your\b|the\s+(?:user|assistant|model|ai)\b|i\s+will\b|i'll\b|sure\b|ok\b|"
        r"ignore|new\s+(?:policy|rules?|instructions?)|from\s+now|approvals?\s+(?:are|is)|"
        r"all\s+(?:tool|writes|actions|requests)|override|developer\s+mode)"
        r"|<\|(?:im_start|im_end|system|assistant|user|endoftext|eot_id|start_header_id)\|>"
        r"|\[/?INST\]|<<\s*/?SYS\s*>>|^\s*(?:human|user)\s*:\s*.{0,80}\n\s*(?:assistant|ai)\s*:"
        r"|\bBEGIN\s+(?:SYSTEM|ADMIN|DEVELOPER)\s+(?:PROMPT|MESSAGE|INSTRUCTIONS|OVERRIDE)\b",
    ),
    _rule(
        "tag-escape",
        "en",
        r"</?\s*(?:passage|passages|data|system|context|document|documents|tool_output|"
        r"tool_result|untrusted|instructions?|user_input|runbook|assistant|function_results)"
        r"\s*>|\]\]>|<!--\s*(?:system|assistant|instructions?|ignore|prompt)",
    ),
    _rule(
        "exfiltration",
        "en",
        r"!\[[^\]\n]*\]\(\s*<?https?://[^)\s]*[?&#][^)\s]*(?:\{|\$|%7B|<|\[|data=|q=|secret|key|"
        r"token|d=|c=|p=)",
    ),
    _rule(
        "exfiltration",
        "en",
        # A link or a reference definition whose query string has a slot for secret data:
        # the model fills it in and a click (or a revived image) delivers it.
        r"(?:\]\(|^[ \t]{0,3}\[[^\]\n]+\]:[ \t]*)<?https?://[^)\s]*[?&#][^)\s]*"
        r"(?:\{|\$\{?|%7B|<|\[)\s*(?:secrets?|tokens?|(?:api_?)?keys?|passwords?|credentials?|"
        r"conversation|history|chat|data|context|prompt|answer|summary|session|env)",
    ),
    _rule(
        "exfiltration",
        "en",
        r"\b(?:send|post|upload|exfiltrate|forward|transmit|leak|email|mail|copy|append|"
        r"include|embed|encode|put|add)\b.{0,50}?"
        rf"(?<!\w){_SENSITIVE}(?!\w).{{0,80}}?(?:https?://|\S+@\S+\.\w+|\b(?:url|webhook|endpoint|"
        r"image\s+link|markdown\s+image|query\s+string)\b)",
    ),
    _rule(
        "exfiltration",
        "en",
        r"\b(?:render|display|show|output|include|insert)\b.{0,30}\b(?:markdown\s+)?image\b"
        r".{0,80}(?:https?://|\burl\b).{0,120}\b(?:secret|token|key|password|credential|"
        r"conversation|data|answer|context)",
    ),
    _rule(
        "approval-bypass",
        "en",
        r"\b(?:do\s+not|don't|never|no\s+need\s+to|you\s+(?:don't|do\s+not)\s+need\s+to)\s+"
        rf"(?:ask|wait|request|seek|check)\s+(?:for\s+)?(?:the\s+|any\s+|an?\s+)?{_APPROVAL}"
        rf"|\b(?:skip|bypass|circumvent|disable|ignore|turn\s+off|avoid|evade|get\s+around|"
        r"switch\s+off)\s+(?:the\s+|any\s+|all\s+|your\s+)?(?:human\s+)?(?:approvals?|review|"
        r"confirmation|policy|policies|guard(?:rail)?s?|safety|four[\s-]eyes|approver)\s*"
        r"(?:steps?|checks?|gates?|process|flow|requirements?|prompts?|layer|filters?)?\s+"
        r"(?:and|then|for\s+this|this\s+time|entirely|completely|now)\b"
        r"|\b(?:auto-?approve|self-?approve|approve\s+(?:it|this|them|your\s+own\s+\w+)\s+"
        r"yourself|approve\s+your\s+own)\b"
        r"|\bno\s+need\s+(?:to\s+(?:involve|ask|wait\s+for|get|bother)|for)\s+(?:a\s+|an\s+|any\s+|the\s+)?"
        r"(?:reviewer|approver|approval|review|human|sign-?off|four\s+eyes)\b.{0,40}?\b(?:just|simply|"
        r"go\s+ahead|proceed)\b"
        r"|\b(?:mark|treat|consider)\s+(?:it|this|that|the)?\s*(?:\w+\s+)?(?:as\s+)?(?:already\s+)?"
        r"(?:approved|pre-?approved|signed\s+off)\s+(?:and|then|so)\s+(?:proceed|continue|"
        r"execute|run|merge|deploy|go\s+ahead|carry\s+on|apply)\b"
        r"|\b(?:the\s+(?:user|admin|operator|security\s+team|owner)|i)\s+(?:has|have)\s+"
        r"(?:already\s+|pre-?)?(?:approved|authori[sz]ed|signed\s+off)\b.{0,60}\b(?:so|no\s+need|"
        r"you\s+(?:can|may|should)|proceed|go\s+ahead|execute|run)\b"
        rf"|\bwithout\s+(?:asking|waiting|requesting|seeking)\s+(?:for\s+)?(?:the\s+|any\s+|an?\s+)?"
        rf"{_APPROVAL}"
        r"|\byou\s+(?:are|have\s+been)\s+(?:now\s+)?(?:authori[sz]ed|allowed|permitted|cleared)\s+"
        r"to\s+(?:run|execute|call|perform|merge|deploy|delete|write|bypass|skip)",
    ),
    _rule(
        "tool-hijack",
        "en",
        r"\b(?:assistant|ai|model|agent|copilot|llm)\b,?\s+(?:must|should|shall|will|now)\s+"
        r"(?:immediately\s+)?(?:call|run|execute|invoke|use)\b.{0,40}\b(?:tool|command|function|"
        r"create_issue|merge|delete|rm\s+-rf|curl|wget)"
        r"|\b(?:when|if)\s+(?:an?\s+|the\s+|any\s+)?(?:ai\s+)?(?:ai|assistant|llm|model|agent|"
        r"copilot|bot)\s+"
        r"(?:reads?|sees?|processes|summari[sz]es)\s+this\b"
        r"|\b(?:note|message|attention|instructions?)\s+(?:to|for)\s+(?:the\s+|any\s+)?(?:ai\s+)?"
        r"(?:ai|assistant|llm|model|agent|copilot|language\s+model)\b"
        r"|\battention,?\s+(?:ai|assistant|llm|model|agent|copilot)\b"
        r"|\b(?:important|urgent|notice|reminder|notes?)\s+(?:to|for)\s+(?:the\s+|any\s+)?"
        r"(?:ai|assistants?|llms?|models?|agents?|copilot|automated\s+(?:readers|agents|systems))\b"
        r"|\b(?:automated\s+)?(?:ai\s+)?(?:agents?|assistants?|llms?|language\s+models?|bots?|"
        r"copilots?)\s+(?:processing|reading|summari[sz]ing|parsing|that\s+reads?|who\s+reads?)"
        r"\s+(?:this|these)\b"
        r"|(?:^|[.!?\"]\s*)(?:assistant|copilot|ai|llm|chatbot|agent)\s*,\s*(?:please\s+)?"
        r"(?:run|execute|delete|call|open|create|merge|approve|grant|send|ignore)\b",
    ),
    # --- Spanish -------------------------------------------------------------------------
    _rule(
        "override",
        "es",
        r"\b(?:ignora|ignore|ignorar|ignoren|olvida|olvide|olvidar|omite|descarta)\b.{0,30}"
        r"\b(?:instrucciones|indicaciones|reglas|[oó]rdenes|directrices)\b"
        r"|\b(?:olvida|ignora|olvide|ignore)\s+(?:todo\s+)?lo\s+que\s+te\s+(?:dijeron|han\s+dicho|"
        r"indicaron|ordenaron)",
    ),
    _rule(
        "role-play",
        "es",
        r"\b(?:finge|finja|imagina)\s+(?:que\s+)?(?:eres|es|ser)\b|\bahora\s+eres\b"
        r"|\bact[uú]a\s+como\s+(?:un\s+|una\s+)?(?:ia\s+sin|dan|asistente\s+sin)",
    ),
    _rule(
        "prompt-leak",
        "es",
        r"\b(?:revela|muestra|imprime|dime|repite)\b.{0,20}\b(?:tu|tus|el|las)\s+"
        r"(?:prompt\s+(?:del|de)\s+sistema|instrucciones\s+(?:ocultas|iniciales|del\s+sistema)|"
        r"claves?|secretos|credenciales|contrase[ñn]as)",
    ),
    _rule(
        "approval-bypass",
        "es",
        r"\b(?:sin\s+(?:pedir|esperar|solicitar)|no\s+(?:pidas|esperes|solicites))\s+"
        r"(?:la\s+|ninguna\s+)?(?:aprobaci[oó]n|confirmaci[oó]n|permiso|revisi[oó]n)"
        r"|\b(?:omite|salta|evita|elude)\s+(?:la\s+|el\s+)?(?:aprobaci[oó]n|revisi[oó]n|"
        r"paso\s+de\s+aprobaci[oó]n|pol[ií]tica)",
    ),
    _rule(
        "exfiltration",
        "es",
        r"\b(?:env[ií]a|manda|sube|publica)\b.{0,40}\b(?:secretos?|claves?|tokens?|credenciales|"
        r"contrase[ñn]as)\b.{0,60}https?://",
    ),
    # --- French --------------------------------------------------------------------------
    _rule(
        "override",
        "fr",
        r"\b(?:ignore[rz]?|oublie[rz]?|n[ée]glige[rz]?|fais\s+abstraction\s+de)\b.{0,30}"
        r"\b(?:instructions|consignes|r[èe]gles|directives|ordres)\b",
    ),
    _rule(
        "role-play",
        "fr",
        r"\b(?:fais|faites)\s+semblant\s+d['’]?[êe]tre\b|\btu\s+es\s+(?:maintenant|d[ée]sormais)\b"
        r"|\bjoue\s+le\s+r[ôo]le\s+d['’]une?\s+(?:ia|assistant)\s+sans",
    ),
    _rule(
        "prompt-leak",
        "fr",
        r"\b(?:r[ée]v[èe]le[rz]?|affiche[rz]?|montre[rz]?|donne[- ]moi|r[ée]p[èe]te[rz]?)\b.{0,20}"
        r"\b(?:ton|ta|tes|votre|vos|le)\s+(?:prompt\s+syst[èe]me|instructions\s+(?:cach[ée]es|"
        r"initiales|syst[èe]me)|cl[ée]s?|secrets|mots\s+de\s+passe|identifiants)",
    ),
    _rule(
        "approval-bypass",
        "fr",
        r"\bsans\s+(?:demander|attendre|solliciter)\s+(?:d['’]|l['’]|la\s+|une\s+|aucune\s+)?"
        r"(?:approbation|validation|confirmation|autorisation|permission)"
        r"|\b(?:saute[rz]?|contourne[rz]?|ignore[rz]?|[ée]vite[rz]?)\s+(?:l['’]|la\s+|le\s+)"
        r"(?:[ée]tape\s+d['’])?(?:approbation|validation|revue|politique)",
    ),
    _rule(
        "exfiltration",
        "fr",
        r"\b(?:envoie|envoyez|poste|publie|transmets)\b.{0,40}\b(?:secrets?|cl[ée]s?|jetons?|"
        r"identifiants|mots\s+de\s+passe)\b.{0,60}https?://",
    ),
    # --- German --------------------------------------------------------------------------
    _rule(
        "override",
        "de",
        r"\b(?:ignorier(?:e|en|t)?|vergiss|vergessen\s+sie|missachte)\b.{0,40}"
        r"\b(?:Anweisungen|Instruktionen|Regeln|Vorgaben|Befehle|Richtlinien)\b",
    ),
    _rule(
        "role-play",
        "de",
        r"\btu\s+so,?\s+als\s+(?:ob|w[äa]rst)\b|\bdu\s+bist\s+(?:jetzt|ab\s+sofort|nun)\s+"
        r"(?:ein[e]?\s+)?(?:KI\s+ohne|DAN|uneingeschr[äa]nkt|frei)"
        r"|\bgib\s+dich\s+als\b.{0,30}\baus\b",
    ),
    _rule(
        "prompt-leak",
        "de",
        r"\b(?:zeig|zeige|gib|verrate|nenne|wiederhole)\b.{0,20}\b(?:deinen|deine|den|die)\s+"
        r"(?:System-?prompt|(?:versteckten|geheimen|urspr[üu]nglichen)\s+Anweisungen|"
        r"Schl[üu]ssel|Geheimnisse|Passw[öo]rter|Zugangsdaten)",
    ),
    _rule(
        "approval-bypass",
        "de",
        r"\bohne\s+(?:auf\s+)?(?:Genehmigung|Freigabe|Best[äa]tigung|R[üu]ckfrage|Pr[üu]fung)\s+"
        r"(?:einzuholen|abzuwarten|zu\s+warten|zu\s+fragen)"
        r"|\b(?:[üu]berspring|umgeh)(?:e|en|t)?\s+(?:die\s+|den\s+)?(?:Genehmigung|Freigabe|"
        r"Pr[üu]fung|Richtlinie|Genehmigungsschritt)",
    ),
    _rule(
        "exfiltration",
        "de",
        r"\b(?:sende|schicke?|lade|poste)\b.{0,40}\b(?:Geheimnisse|Schl[üu]ssel|Tokens?|"
        r"Passw[öo]rter|Zugangsdaten)\b.{0,60}https?://",
    ),
    # --- Portuguese ----------------------------------------------------------------------
    _rule(
        "override",
        "pt",
        r"\b(?:ignore|ignora|ignorar|esque[çc]a|esque[çc]a-se|desconsidere|descarte)\b.{0,30}"
        r"\b(?:instru[çc][õo]es|regras|orienta[çc][õo]es|ordens|diretrizes)\b",
    ),
    _rule(
        "role-play",
        "pt",
        r"\b(?:finja|fingir|imagine)\s+(?:que\s+)?(?:voc[êe]\s+)?(?:[ée]|ser)\b"
        r"|\bagora\s+voc[êe]\s+[ée]\b",
    ),
    _rule(
        "prompt-leak",
        "pt",
        r"\b(?:revele|mostre|imprima|diga|repita)\b.{0,20}\b(?:seu|sua|seus|suas|o|as)\s+"
        r"(?:prompt\s+do\s+sistema|instru[çc][õo]es\s+(?:ocultas|iniciais|do\s+sistema)|"
        r"chaves?|segredos|credenciais|senhas)",
    ),
    _rule(
        "approval-bypass",
        "pt",
        r"\bsem\s+(?:pedir|esperar|solicitar)\s+(?:a\s+|nenhuma\s+)?(?:aprova[çc][ãa]o|"
        r"confirma[çc][ãa]o|permiss[ãa]o|revis[ãa]o)"
        r"|\b(?:pule|ignore|contorne|evite)\s+(?:a\s+|o\s+)?(?:aprova[çc][ãa]o|revis[ãa]o|"
        r"etapa\s+de\s+aprova[çc][ãa]o|pol[íi]tica)",
    ),
    # --- Italian -------------------------------------------------------------------------
    _rule(
        "override",
        "it",
        r"\b(?:ignora|ignorate|ignorare|dimentica|dimenticate|trascura)\b.{0,30}"
        r"\b(?:istruzioni|regole|indicazioni|direttive|ordini)\b",
    ),
    _rule(
        "role-play",
        "it",
        r"\b(?:fingi|fai\s+finta)\s+di\s+essere\b|\bora\s+sei\b|\bd['’]ora\s+in\s+poi\s+sei\b",
    ),
    _rule(
        "prompt-leak",
        "it",
        r"\b(?:rivela|mostra|stampa|dimmi|ripeti)\b.{0,20}\b(?:il\s+tuo|i\s+tuoi|le\s+tue|il|le)\s+"
        r"(?:prompt\s+di\s+sistema|istruzioni\s+(?:nascoste|iniziali|di\s+sistema)|chiavi|"
        r"segreti|credenziali|password)",
    ),
    _rule(
        "approval-bypass",
        "it",
        r"\bsenza\s+(?:chiedere|attendere|aspettare)\s+(?:l['’]|alcuna\s+|la\s+)?(?:approvazione|"
        r"conferma|autorizzazione|revisione)"
        r"|\b(?:salta|aggira|ignora|evita)\s+(?:l['’]|la\s+|il\s+)(?:approvazione|revisione|"
        r"passaggio\s+di\s+approvazione|policy)",
    ),
    # --- Dutch ---------------------------------------------------------------------------
    _rule(
        "override",
        "nl",
        r"\b(?:negeer|vergeet)\b.{0,30}\b(?:instructies|regels|opdrachten|richtlijnen)\b",
    ),
    # --- Russian -------------------------------------------------------------------------
    _rule(
        "override",
        "ru",
        r"(?:игнорируй|игнорируйте|проигнорируй|забудь|забудьте|не\s+обращай\s+внимания\s+на)"
        r".{0,30}(?:инструкци|указани|правил|команд)",
    ),
    _rule(
        "role-play",
        "ru",
        r"(?:притворись|представь,?\s+что\s+ты|теперь\s+ты|веди\s+себя\s+как)",
    ),
    _rule(
        "prompt-leak",
        "ru",
        r"(?:покажи|выведи|раскрой|повтори|скажи)\s.{0,20}(?:системн\w+\s+(?:промпт|подсказк|"
        r"инструкци)|скрыт\w+\s+инструкци|ключ|секрет|парол)",
    ),
    _rule(
        "approval-bypass",
        "ru",
        r"(?:без\s+(?:запроса\s+)?(?:подтверждени|одобрени|согласовани|проверки)\w*\s+"
        r"(?:выполни|запусти|сделай|удали)|(?:пропусти|обойди)\s+(?:этап\s+)?"
        r"(?:подтверждени|одобрени|согласовани|проверк))",
    ),
    # --- Chinese -------------------------------------------------------------------------
    _rule(
        "override",
        "zh",
        r"(?:忽略|无视|忽视|忘记|忘掉|不要理会|不要遵守|跳过)(?:之前|以上|上面|先前|前面|所有|全部|"
        r"你的|系统)?.{0,6}(?:指令|指示|说明|规则|提示|设定|要求)",
    ),
    _rule(
        "role-play",
        "zh",
        r"(?:假装|扮演|假设)你(?:是|现在是)|你现在是(?:一个)?(?:没有|不受|DAN|无限制)|开发者模式",
    ),
    _rule(
        "prompt-leak",
        "zh",
        r"(?:显示|输出|告诉我|打印|泄露|重复)(?:你的)?(?:系统提示|系统指令|隐藏指令|初始指令|"
        r"密钥|密码|凭据|API\s*密钥)",
    ),
    _rule(
        "approval-bypass",
        "zh",
        r"(?:跳过|绕过|无需|不需要|不用)(?:等待)?(?:人工)?(?:审批|批准|审核|确认)",
    ),
    _rule(
        "exfiltration",
        "zh",
        r"(?:发送|上传|发到|提交)(?:所有)?.{0,10}(?:密钥|密码|凭据|令牌|机密).{0,30}https?://",
    ),
    # --- Japanese ------------------------------------------------------------------------
    _rule(
        "override",
        "ja",
        r"(?:以前|前|上記|これまで|先ほど|すべて|全て)の(?:すべての)?(?:指示|命令|ルール|"
        r"プロンプト|設定)を?(?:すべて)?(?:無視|忘れ)|指示を(?:すべて)?無視",
    ),
    _rule(
        "role-play",
        "ja",
        r"(?:のふりをして|になりきって|として振る舞って|あなたは今から|制限のないAI)",
    ),
    _rule(
        "prompt-leak",
        "ja",
        r"(?:システムプロンプト|隠された指示|初期指示|APIキー|パスワード|秘密鍵)を"
        r"(?:表示|教え|出力|見せ|繰り返)",
    ),
    _rule(
        "approval-bypass",
        "ja",
        r"(?:承認|確認|レビュー)(?:を)?(?:スキップ|省略|飛ばし|待たず|求めず|なしで)",
    ),
    # --- Korean --------------------------------------------------------------------------
    _rule(
        "override",
        "ko",
        r"(?:이전|위의|앞의|모든)\s*(?:지시|지침|명령|규칙)(?:을|를|은|는)?\s*(?:모두\s*)?"
        r"(?:무시|잊어)",
    ),
    _rule(
        "approval-bypass",
        "ko",
        r"(?:승인|검토|확인)(?:을|를)?\s*(?:건너뛰|생략|우회|받지\s*말)",
    ),
)

# Phrases read after every separator is removed ("i.g.n.o.r.e a l l"): letters only.
SQUASHED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        (
            "override",
            r"(?:ignore|disregard|forget)(?:all|any|the|your)*(?:previous|prior|above|"
            r"earlier|system)?(?:instructions|rules|guidelines|prompts|directives)",
        ),
        (
            "role-play",
            r"(?:youarenow|pretendyouare|actas)(?:dan|jailbroken|unrestricted|"
            r"unfiltered|evil)|doanythingnow|developermode",
        ),
        (
            "prompt-leak",
            r"(?:reveal|print|show|leak|repeat)(?:me)?(?:your|the)(?:system|hidden|"
            r"initial)(?:prompt|instructions)",
        ),
        (
            "approval-bypass",
            r"(?:skip|bypass|ignore)(?:the|all|any)?(?:approval|review|policy)"
            r"(?:step|check|gate)?(?:and|then)",
        ),
    )
)
