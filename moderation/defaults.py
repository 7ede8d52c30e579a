"""The rules and word lists a fresh Parley server starts with, in their JSON shapes.

Over 500 lines because most of it is data (rule bodies, prompts, example sentences): one
concept, the shipped defaults, that an operator reads in one place.

The server stores them like any rule or list created through the API (so they have
revisions, can be edited, disabled or deleted).

Lists: ``profanity-en``, ``profanity-de``, ``profanity-fr``, ``profanity-es``, ``profanity-it``,
``profanity-pt``, ``profanity-nl`` (keywords, from ``moderation/data/*.txt``).

Rules (all for message type ``text`` only, so custom messages stay unmoderated by default):

- ``profanity`` - enabled; any of the seven profanity lists -> ``block``.
- ``spam`` - enabled; the spam behaviour detector (the same or nearly the same text sent to 3
  conversations within 10 minutes, or 3 links in one message) -> ``block``. Blocking rather
  than ``review`` keeps a flood out of the moderators' queue and never leaves messages
  pending. Bursts from one user are left to the per-user rate limit.
- ``contact-phone`` - disabled; a phone number (also spelled out or split) -> ``block``.
- ``contact-email`` - disabled; an e-mail address (also obfuscated) -> ``block``.

- ``openai-*`` - disabled; the predefined OpenAI prompt rules (eight for text, eight for
  images), each blocking what its policy prompt describes. They need an OpenAI API key.

The contact rules are off because sharing a number or address is normal in most chats;
marketplaces and communities for minors turn them on.

Local AI rules (the detectors in ``moderation/detectors/{toxicity,scam,similarity,sentiment,
image}.py``); docs/moderation.md gives the precision and recall measured at their thresholds:

- ``ai-toxicity`` - enabled; toxicity, insults, identity attacks, threats at
  ``REVIEW_THRESHOLD`` (0.9) -> ``review``.
- ``ai-harmful-content`` - enabled; sexual content, self-harm, violence at ``REVIEW_THRESHOLD``
  -> ``review``.
- ``ai-toxicity-flag``, ``ai-harmful-content-flag`` - enabled; the same categories in the band
  below (``TOXICITY_THRESHOLDS``: 0.8-0.85) -> ``flag`` (delivered, and queued for a
  moderator).
- ``ai-scam`` - disabled; scam/spam and phishing (text head + links + spam behaviour) ->
  ``review``.
- ``platform-circumvention`` - disabled; similarity to the ``platform-circumvention`` sentences
  list (moving the chat or the payment off the platform) -> ``flag``.
- ``negative-sentiment`` - disabled; strongly negative messages -> ``flag``.
- ``ai-image-nudity`` - disabled; explicit nudity in image and video messages (Open-NSFW) ->
  ``block``.

The review threshold is where the held messages were harmful at least 9 times in 10 on every
public set never trained on (Jigsaw sample, XSTest, SimpleSafetyTests) and on the test splits
of the sets trained on, but EDOS (whose labels are sexism only); the flag band catches about
twice as much at a precision of 0.8-0.9 (docs/moderation.md, "Measured quality"). A fresh
server also starts with the ``aiCascade`` setting on, which lets the lexical stage settle clear
texts without the encoder. These are seeded only into a data directory that has no rule
history, so an existing deployment keeps its rules and settings.

Known-bad images:

- ``known-bad-images`` - enabled; an image or video frame within 10 bits (pHash) of a hash in
  the ``known-bad-images`` list -> ``block`` (and the server quarantines the upload). The list
  starts empty, so the rule costs nothing until moderators add hashes or images
  (``POST /api/v1/moderation/lists/known-bad-images/images``); from then on every image and
  video is checked without anyone having to remember to enable a rule.

List ``platform-circumvention`` (sentences): typical ways of moving a conversation or a
payment off the platform; edit it through the lists API.
"""

from __future__ import annotations

from moderation.bundled_lists import PROFANITY_LANGUAGES, read_profanity_list

#: The thresholds of the ``ai-toxicity-flag`` and ``ai-harmful-content-flag`` rules (the flag
#: band), per category (see docs/moderation.md for the precision and recall measured at these
#: values by bench/moderation_quality.py).
TOXICITY_THRESHOLDS: dict[str, float] = {
    "toxicity": 0.8,
    "severe_toxicity": 0.8,
    "obscene": 0.8,
    "insult": 0.8,
    "identity_attack": 0.8,
    "threat": 0.85,
    "sexual": 0.85,
    "self_harm": 0.8,
    "violence": 0.85,
}

#: The threshold of the ``ai-toxicity`` and ``ai-harmful-content`` rules (``review``: held for a
#: moderator), every category: the lowest at which the held messages of every public set never
#: trained on were harmful at least 9 times in 10.
REVIEW_THRESHOLD = 0.9

#: The categories of ``ai-toxicity`` and of ``ai-harmful-content``.
TOXICITY_RULE_CATEGORIES = ["toxicity", "severe_toxicity", "insult", "identity_attack", "threat"]
HARMFUL_RULE_CATEGORIES = ["sexual", "self_harm", "violence"]

#: The thresholds of the ``ai-scam`` rule, per category.
SCAM_THRESHOLDS: dict[str, float] = {
    "scam": 0.8,
    "phishing": 0.8,
    "advance_fee": 0.9,
    "crypto": 0.9,
    "fake_offer": 0.9,
}

#: The threshold of the ``platform-circumvention`` rule (cosine similarity).
SIMILARITY_THRESHOLD = 0.65


def default_lists() -> list[dict[str, object]]:
    """The bundled word lists as list JSON objects (reads package data)."""
    out: list[dict[str, object]] = []
    for code, language in PROFANITY_LANGUAGES:
        items, allow = read_profanity_list(code)
        out.append(
            {
                "id": f"profanity-{code}",
                "name": f"Profanity ({language})",
                "kind": "keywords",
                "items": items,
                "allow": allow,
            }
        )
    out.append(
        {
            "id": KNOWN_BAD_IMAGES,
            "name": "Known-bad images (perceptual hashes)",
            "kind": "image_hashes",
            "items": [],
            "allow": [],
        }
    )
    out.append(
        {
            "id": "platform-circumvention",
            "name": "Platform circumvention (moving chat or payment off-platform)",
            "kind": "sentences",
            "items": list(PLATFORM_CIRCUMVENTION),
            "allow": [],
        }
    )
    return out


#: The empty ``image_hashes`` list that the enabled ``known-bad-images`` rule names.
KNOWN_BAD_IMAGES = "known-bad-images"


def _rule(
    rule_id: str,
    name: str,
    description: str,
    conditions: list[dict[str, object]],
    actions: list[str],
    *,
    enabled: bool,
) -> dict[str, object]:
    return {
        "id": rule_id,
        "name": name,
        "description": description,
        "enabled": enabled,
        "filters": {},
        "match": "any",
        "conditions": conditions,
        "actions": actions,
    }


#: Sentences for the ``platform-circumvention`` list (kind ``sentences``).
PLATFORM_CIRCUMVENTION: tuple[str, ...] = (
    "let's continue this conversation on WhatsApp",
    "message me on telegram instead",
    "add me on snapchat, my username is in my bio",
    "text me on my personal number",
    "give me your phone number and I'll call you",
    "what's your whatsapp number?",
    "can we talk somewhere else, not on this app?",
    "this app is monitored, let's move to signal",
    "send me your email and I'll write you directly",
    "contact me directly so we can skip the platform",
    "find me on instagram and DM me there",
    "my kik is the same as my name here",
    "let's talk on discord, add me",
    "hit me up on wechat",
    "I don't check messages here, reach me on facebook messenger",
    "pay me directly by bank transfer instead of through the site",
    "send the money via paypal friends and family so there are no fees",
    "we can avoid the platform fee if you pay me outside",
    "pay me in cash when we meet and cancel the order here",
    "send it with western union or moneygram",
    "I only accept crypto, send it to my wallet",
    "you can pay me with gift cards",
    "let's do the deal off the site, it's cheaper for both of us",
    "cancel the booking and book with me directly for a discount",
    "I'll give you a better price if we do it outside this app",
    "pay me through venmo or cash app",
    "zelle me the deposit and I'll hold the item for you",
    "transfer the deposit to my personal account",
    "don't use the checkout, just wire me the payment",
    "here's my number, call me: it's in the picture",
    "my contact details are in my profile picture",
    "search my name on instagram, you'll find me",
    "delete this chat and message me on my other account",
    "let's meet outside of the app, I'll send you my address privately",
    "the admins read everything here, text me privately",
    "I can't share my number here, it gets blocked, write it down: five five five",
    "reach me at my email, it's my name at gmail",
    "use the code in my bio to contact me elsewhere",
    "click the link in my profile to chat with me privately",
    "let's switch to a video call on skype",
)


def default_rules() -> list[dict[str, object]]:
    """The default rules as Rule JSON objects (without revision and timestamps)."""
    return [
        _rule(
            "profanity",
            "Profanity filter",
            "Blocks text messages containing profanity or slurs in English, German, French,"
            " Spanish, Italian, Portuguese or Dutch, including common evasions.",
            [
                {"kind": "keywords", "messageTypes": ["text"], "listId": f"profanity-{code}"}
                for code, _ in PROFANITY_LANGUAGES
            ],
            ["block"],
            enabled=True,
        ),
        _rule(
            KNOWN_BAD_IMAGES,
            "Known-bad images",
            "Blocks image and video messages whose image, or one of whose frames, is within"
            " 10 bits (of 64) of a perceptual hash in the known-bad-images list, and"
            " quarantines the upload. The list starts empty: add hashes or images to it.",
            [
                {
                    "kind": "image_hash",
                    "messageTypes": ["image", "video"],
                    "listId": KNOWN_BAD_IMAGES,
                    "maxDistance": 10,
                }
            ],
            ["block"],
            enabled=True,
        ),
        _rule(
            "spam",
            "Spam behaviour",
            "Blocks the same or nearly the same text sent to 3 or more conversations within"
            " 10 minutes, and link-heavy messages (3 or more links). Floods from one user are"
            " the rate limiter's job, so bursts are not judged here by default.",
            [
                {
                    "kind": "spam",
                    "messageTypes": ["text"],
                    "categories": ["repeat", "links"],
                    "acrossConversations": True,
                }
            ],
            ["block"],
            enabled=True,
        ),
        _rule(
            "contact-phone",
            "Phone numbers",
            "Blocks phone numbers, also when spelled out or split; off by default.",
            [{"kind": "phone", "messageTypes": ["text"], "contextWindow": 2}],
            ["block"],
            enabled=False,
        ),
        _rule(
            "contact-email",
            "E-mail addresses",
            "Blocks e-mail addresses, also when obfuscated ('name at example dot com');"
            " off by default.",
            [{"kind": "email", "messageTypes": ["text"], "contextWindow": 2}],
            ["block"],
            enabled=False,
        ),
        *local_ai_default_rules(),
        *openai_default_rules(),
    ]


#: The predefined OpenAI prompt rules, as (id suffix, name, policy prompt), for text messages.
OPENAI_TEXT_PROMPTS: tuple[tuple[str, str, str], ...] = (
    (
        "hate-harassment",
        "Hate and harassment",
        "Flag messages that attack, demean, threaten or harass a person or a group, including"
        " slurs, dehumanising language and hate based on race, ethnicity, religion, nationality,"
        " gender, sexual orientation, disability or other protected traits, and targeted"
        " bullying or intimidation.",
    ),
    (
        "privacy-sensitive",
        "Privacy and sensitive information",
        "Flag messages that share or request personal or sensitive information about anyone:"
        " home addresses, phone numbers, e-mail addresses, government ids, bank or card numbers,"
        " passwords or login codes, medical records, or doxxing of a private person.",
    ),
    (
        "explicit-content",
        "Explicit or inappropriate content",
        "Flag sexually explicit, pornographic or graphically obscene messages, and content"
        " clearly inappropriate for a general audience chat.",
    ),
    (
        "spam-scam",
        "Spam and scam",
        "Flag unsolicited advertising, chain messages, phishing, fake giveaways, investment or"
        " crypto schemes, requests to move the conversation off-platform to pay or invest, and"
        " other attempts to defraud.",
    ),
    (
        "violent-threats",
        "Violent or terroristic threats",
        "Flag threats of violence against people or places, incitement to violence, and support"
        " for, promotion of or planning of terrorism or violent extremism.",
    ),
    (
        "non-consensual-sexual",
        "Non-consensual sexual content or exploitation",
        "Flag sexual content involving minors, non-consensual sexual content, sextortion,"
        " grooming, sharing or threatening to share intimate images without consent, and"
        " sexual exploitation or trafficking.",
    ),
    (
        "impersonation-fraud",
        "Impersonation or fraud",
        "Flag messages that impersonate a real person, a company, support staff or an official,"
        " or that try to obtain money, credentials or personal data under false pretences.",
    ),
    (
        "self-harm",
        "Self-harm or suicidal content",
        "Flag messages that express intent to self-harm or die by suicide, encourage or"
        " instruct self-harm, suicide or eating disorders.",
    ),
)

#: The predefined OpenAI prompt rules for image messages (the uploaded image; disabled).
OPENAI_IMAGE_PROMPTS: tuple[tuple[str, str, str], ...] = (
    (
        "image-hate-harassment",
        "Image: hate or harassment",
        "Flag images with hateful symbols, slurs, or content that demeans or harasses a person"
        " or group.",
    ),
    (
        "image-explicit",
        "Image: explicit or sexual content",
        "Flag images with nudity, sexual acts or sexually explicit content.",
    ),
    (
        "image-violence-gore",
        "Image: graphic violence or gore",
        "Flag images showing graphic violence, serious injury, gore or cruelty.",
    ),
    (
        "image-privacy",
        "Image: privacy or personal data",
        "Flag images showing personal data: identity documents, cards, addresses, screenshots"
        " with private conversations or contact details.",
    ),
    (
        "image-self-harm",
        "Image: self-harm",
        "Flag images showing or encouraging self-harm or suicide.",
    ),
    (
        "image-minor-safety",
        "Image: minor safety and exploitation",
        "Flag images that sexualise, endanger or exploit minors.",
    ),
    (
        "image-fraud-scam",
        "Image: fraud or scam indicators",
        "Flag images promoting scams: fake payment confirmations, phishing pages, fake"
        " giveaways, counterfeit goods or investment schemes.",
    ),
    (
        "image-terrorism-extremism",
        "Image: terrorism or extremist promotion",
        "Flag images promoting terrorist or violent extremist organisations, their symbols,"
        " propaganda or attacks.",
    ),
)


def openai_default_rules() -> list[dict[str, object]]:
    """The predefined OpenAI prompt rules, all disabled (they need an OpenAI API key).

    Ids are ``openai-<suffix>``; text rules cover ``text``, image rules cover ``image``; each
    blocks when the model says the message violates its policy with confidence >= 0.7.
    """
    rules: list[dict[str, object]] = []
    for prompts, types in ((OPENAI_TEXT_PROMPTS, ["text"]), (OPENAI_IMAGE_PROMPTS, ["image"])):
        for suffix, name, prompt in prompts:
            rules.append(
                _rule(
                    f"openai-{suffix}",
                    f"OpenAI: {name}",
                    f"{prompt} Needs an OpenAI API key; off by default.",
                    [{"kind": "openai", "messageTypes": types, "prompt": prompt, "threshold": 0.7}],
                    ["block"],
                    enabled=False,
                )
            )
    return rules


def local_ai_default_rules() -> list[dict[str, object]]:
    """The rules of the local AI detectors (see the module docstring for which are enabled)."""

    def family(
        rule_id: str, name: str, what: str, categories: list[str]
    ) -> list[dict[str, object]]:
        """The review rule (nearly sure: ``REVIEW_THRESHOLD``) and the flag rule (likely: the
        band from ``TOXICITY_THRESHOLDS`` up) of one family of categories."""

        def condition(review: bool) -> list[dict[str, object]]:
            thresholds = {
                c: REVIEW_THRESHOLD if review else TOXICITY_THRESHOLDS[c] for c in categories
            }
            return [
                {
                    "kind": "toxicity",
                    "messageTypes": ["text"],
                    "categories": categories,
                    "thresholds": thresholds,
                }
            ]

        return [
            _rule(
                rule_id,
                name,
                f"Holds for review messages the local model is nearly sure are {what} (score"
                f" {REVIEW_THRESHOLD} or more; docs/moderation.md gives the measured precision).",
                condition(review=True),
                ["review"],
                enabled=True,
            ),
            _rule(
                f"{rule_id}-flag",
                f"{name} (likely)",
                f"Delivers, and queues for a moderator, messages the local model scores as likely"
                f" {what} (0.8-0.85, up to the review rule's {REVIEW_THRESHOLD}).",
                condition(review=False),
                ["flag"],
                enabled=True,
            ),
        ]

    return [
        *family(
            "ai-toxicity",
            "AI message toxicity",
            "toxic, insulting, attacking a group or threatening",
            TOXICITY_RULE_CATEGORIES,
        ),
        *family(
            "ai-harmful-content",
            "AI sexual, self-harm and violent content",
            "sexual, about self-harm or violent",
            HARMFUL_RULE_CATEGORIES,
        ),
        _rule(
            "ai-scam",
            "AI scam and spam",
            "Holds for review messages the local model scores as scam or phishing (text, links"
            " and the sender's spam behaviour); off by default.",
            [
                {
                    "kind": "scam",
                    "messageTypes": ["text"],
                    "categories": ["scam", "phishing"],
                    "thresholds": {c: SCAM_THRESHOLDS[c] for c in ("scam", "phishing")},
                }
            ],
            ["review"],
            enabled=False,
        ),
        _rule(
            "platform-circumvention",
            "Moving the chat or payment off-platform",
            "Flags messages close in meaning to the platform-circumvention sentences (other"
            " messengers, contact handles, paying outside the platform); off by default.",
            [
                {
                    "kind": "similarity",
                    "messageTypes": ["text"],
                    "listId": "platform-circumvention",
                    "threshold": SIMILARITY_THRESHOLD,
                }
            ],
            ["flag"],
            enabled=False,
        ),
        _rule(
            "negative-sentiment",
            "Strongly negative messages",
            "Flags strongly negative messages (English only); off by default.",
            [
                {
                    "kind": "sentiment",
                    "messageTypes": ["text"],
                    "categories": ["negative"],
                    "threshold": 0.9,
                }
            ],
            ["flag"],
            enabled=False,
        ),
        _rule(
            "ai-image-nudity",
            "AI image nudity",
            "Blocks images, and videos by their worst sampled frame, that the local"
            " Open-NSFW model scores as explicit nudity; needs the optional 'images' extra"
            " (and 'video' for videos); off by default.",
            [
                {
                    "kind": "image",
                    "messageTypes": ["image", "video"],
                    "categories": ["explicit_nudity"],
                    "threshold": 0.8,
                }
            ],
            ["block"],
            enabled=False,
        ),
    ]
