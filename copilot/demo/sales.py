"""Sales-call and NPS building blocks. {rep}, {customer}, {company}, {due}, {amount}, {se} are filled per call."""

CALL_KINDS = [
    "Discovery call",
    "Product demo",
    "Pricing discussion",
    "Renewal review",
    "Technical deep-dive",
    "Security review",
]

OPENING = [
    ("rep", "Hi {customer}, thanks for making the time today. Can everyone hear me okay?"),
    ("customer", "Yes, loud and clear. Thanks for setting this up."),
    (
        "rep",
        "Great. I thought we'd spend a few minutes on where {company} is today, then look at how Ledgerly would fit, and leave time for questions.",
    ),
    ("customer", "Sounds good."),
]

PAIN_POINTS = [
    (
        "customer",
        "Right now our invoicing is a mix of spreadsheets and our old accounting tool. Month-end takes the finance team about four days.",
    ),
    ("customer", "The biggest pain is chasing late payments. We send reminders by hand and half of them slip through."),
    ("customer", "We bill in three currencies and reconciling the payments against bank statements is mostly manual."),
    (
        "customer",
        "Our sales team closes deals in Salesforce, and someone retypes every order into the invoicing system.",
    ),
    ("customer", "We had two audits last year and pulling the invoice history was painful."),
]

PITCH = [
    (
        "rep",
        "That's exactly what we see with teams your size. Ledgerly creates the invoice from the closed deal and sends reminders automatically on the schedule you choose.",
    ),
    (
        "rep",
        "Payments from Stripe and bank feeds are matched to invoices automatically, and anything that doesn't match lands in a review queue.",
    ),
    (
        "se",
        "On the technical side, the Salesforce integration syncs closed-won opportunities every five minutes, and you can map custom fields.",
    ),
    ("rep", "Most customers your size get month-end down from days to a few hours within the first quarter."),
]

OBJECTIONS = [
    ("customer", "Honestly, the price is the main concern. {amount} a year is more than we budgeted for this."),
    ("customer", "Our IT team will ask about security. Do you have SOC 2, and where is the data hosted?"),
    ("customer", "I'm worried about the migration effort. We have eight years of invoices in the old system."),
    ("customer", "We tried a similar tool two years ago and the team never adopted it."),
    ("customer", "We'd need the NetSuite integration to work before we can commit."),
]

OBJECTION_ANSWERS = [
    (
        "rep",
        "I understand. If we start with the finance team only and add sales later, the first-year cost comes down quite a bit. I can put together a phased proposal.",
    ),
    (
        "se",
        "We're SOC 2 Type II certified and data is hosted in the EU or US, your choice. I can send the report under NDA.",
    ),
    (
        "se",
        "Our onboarding team imports historical invoices for you; for eight years of data that's typically two to three weeks.",
    ),
    (
        "rep",
        "That's fair. This time we'd run a four-week pilot with a small group and weekly check-ins, so adoption is measured before you commit.",
    ),
    (
        "se",
        "The NetSuite connector is generally available; I can set up a sandbox connection so your team can test it.",
    ),
]

DECISIONS = [
    ("customer", "Okay. I think we agree to start with a pilot for the finance team in {month}."),
    ("customer", "Let's go with the Business plan for now and revisit Enterprise after the pilot."),
    ("customer", "We've decided to keep the old system read-only and move all new invoicing to Ledgerly."),
    ("customer", "We'll need sign-off from our CFO, but the team is aligned on moving forward."),
]

ACTION_ITEMS = [
    ("rep", "I'll send the phased proposal with the revised pricing by {due}."),
    ("se", "I'll share the SOC 2 report and our security questionnaire answers by {due}."),
    ("customer", "I'll set up a call with our CFO before {due} so we can review the proposal together."),
    ("customer", "Our IT lead will send the list of integration requirements by {due}."),
    ("se", "I'll create the NetSuite sandbox connection and send the credentials by {due}."),
    ("rep", "I'll book the pilot kickoff for {due} and send the invite to the finance team."),
]

NEXT_STEPS = [
    ("rep", "So the next step is the review with your CFO, and then we sign the pilot agreement."),
    ("rep", "Next step: you review the proposal, and we meet again on {due} to finalise."),
    ("rep", "Next step is the technical validation with your IT team in the sandbox."),
]

QUESTIONS = [
    (
        ("customer", "How long does a typical rollout take for a team like ours?"),
        ("rep", "Usually four to six weeks, including the data import and training."),
    ),
    (
        ("customer", "Can we keep our current invoice numbering?"),
        ("se", "Yes, you set the prefix and the next number, so the sequence continues where it is today."),
    ),
    (
        ("customer", "What happens to our data if we leave?"),
        ("rep", "You can export everything as CSV and PDF at any time, and we keep it for 90 days after cancellation."),
    ),
    (
        ("customer", "Do you support approval workflows for large invoices?"),
        ("rep", "On the Business plan, yes: invoices above a threshold go to an approver first."),
    ),
    (
        ("customer", "Is there an API for our internal tools?"),
        ("se", "There's a REST API with webhooks; limits depend on the plan, 120 requests per minute on Business."),
    ),
    (
        ("customer", "Who would be our point of contact after signing?"),
        ("rep", "You'd get a dedicated onboarding manager for the first 90 days, then our customer success team."),
    ),
    (
        ("customer", "Can clients pay by bank transfer as well as card?"),
        ("se", "Yes, bank transfers are matched automatically through the bank feed."),
    ),
]

SMALL_TALK = [
    [("customer", "Sorry, give me a second, someone's at the door."), ("rep", "No problem at all.")],
    [
        ("customer", "Could you repeat that last part? The line cut out for a moment."),
        ("rep", "Sure — I said the reminders can be set per client."),
    ],
    [("rep", "Any questions so far?"), ("customer", "Not yet, keep going.")],
    [
        ("customer", "Can you share your screen again? I lost it."),
        ("se", "Sharing now. Can you see the dashboard?"),
        ("customer", "Yes, got it."),
    ],
    [("customer", "Makes sense."), ("rep", "Great.")],
]

# The product demo, in order; a call shows a leading slice of it.
WALKTHROUGH = [
    ("se", "Let me show you the dashboard first. At the top you see outstanding, overdue and paid this month."),
    ("customer", "Is that per entity or for the whole group?"),
    ("se", "You can switch between entities here, or see the consolidated view."),
    (
        "se",
        "Creating an invoice: pick the client, the line items come from your product catalogue, and taxes are calculated by country.",
    ),
    ("customer", "What about clients that are tax-exempt?"),
    ("se", "You mark the client as exempt once, with the certificate number, and it's applied to every invoice."),
    ("se", "Here's the reminder schedule. Three days before due, on the due date, and then weekly, all editable."),
    ("customer", "Can we stop reminders for a specific client? Some of our big accounts would be offended."),
    ("se", "Yes, per client, and you can also pause them for a single invoice."),
    (
        "se",
        "And this is the reconciliation view: bank transactions on the left, suggested invoice matches on the right.",
    ),
    ("customer", "How good is the matching in practice?"),
    ("se", "Customers typically see 85 to 95 percent matched automatically; the rest takes a click each."),
    ("se", "Finally, reports: aged receivables, revenue by client, and the audit export your accountants asked about."),
    ("customer", "That audit export alone would have saved us a week last year."),
]
CLOSING = [
    ("rep", "Thanks everyone, this was really helpful. I'll follow up by email with a summary."),
    ("customer", "Thank you, talk soon."),
]

DEAL_NOTES = [
    "Champion is {name} ({title}); very engaged, pushes internally for the rollout.",
    "{name} mentioned a budget freeze until next quarter. Keep in touch monthly.",
    "Renewal risk: complaints about reliability in the last QBR.",
    "Expansion opportunity: their sister company also needs invoicing.",
    "Legal review of the MSA is with their counsel; expect redlines.",
    "{name} ({title}) asked for two customer references in the same industry.",
    "Competitor in the mix: they are also trialling a cheaper tool. Our edge is reconciliation and the Salesforce sync.",
    "Procurement needs three quotes; we're the preferred option according to {name}.",
    "Security questionnaire returned; only open point is SSO enforcement for contractors.",
]
ACCOUNT_NOTES = [
    "{company} runs month-end on the last two business days; avoid maintenance windows then.",
    "Main admin is {name} ({title}). Prefers email over calls.",
    "Had two billing incidents this year; handle their tickets with priority.",
    "Uses the API heavily for nightly invoice creation; watch rate limits.",
    "Asked about EU data hosting; currently hosted in the US region.",
    "{name} is very happy with support, offered to be a reference.",
]
STALLED_DEAL_NOTE = (
    "Sent the redlined contract to {name} ({title}). Waiting on their legal team; no reply yet and no meeting booked."
)

NPS_THEMES: dict[str, dict[str, list[str]]] = {
    "pricing": {
        "negative": [
            "Too expensive for a small business.",
            "The price increase at renewal was hard to swallow.",
            "Pricing per extra user adds up quickly.",
            "Good tool but overpriced compared to alternatives.",
        ],
        "positive": [
            "Fair price for what it does.",
            "Worth every cent, saves us hours each month.",
            "The Starter plan is great value.",
        ],
    },
    "support": {
        "negative": [
            "Support takes days to answer.",
            "Had to explain my problem three times to different agents.",
            "Support closed my ticket without fixing anything.",
        ],
        "positive": [
            "Support is fast and friendly.",
            "Liam from support solved our issue in minutes.",
            "Great customer service, always helpful.",
            "The support team really knows the product.",
        ],
    },
    "ease_of_use": {
        "negative": [
            "The interface is confusing, too many menus.",
            "Hard to find basic settings.",
            "Steep learning curve for new staff.",
        ],
        "positive": [
            "Very easy to use.",
            "Clean, intuitive interface.",
            "Our whole team picked it up in a day.",
            "Simple and straightforward invoicing.",
        ],
    },
    "features": {
        "negative": [
            "Missing multi-currency recurring invoices.",
            "We need an approval workflow before invoices go out.",
            "Reporting is too basic for our accountant.",
            "No way to customise invoice numbering per client.",
        ],
        "positive": [
            "Automatic reminders are a lifesaver.",
            "Love the recurring invoices.",
            "The reports give us everything we need.",
        ],
    },
    "reliability": {
        "negative": [
            "Outages during month-end are unacceptable.",
            "The app was down twice last month.",
            "Too many bugs after each update.",
            "We were double charged twice this year.",
        ],
        "positive": ["Rock solid, never had downtime.", "Reliable, it just works."],
    },
    "integrations": {
        "negative": [
            "The QuickBooks sync breaks every few weeks.",
            "Salesforce integration creates duplicates.",
            "Xero sync is unreliable.",
        ],
        "positive": [
            "The Stripe integration is seamless.",
            "Syncs perfectly with QuickBooks.",
            "Salesforce integration saves our sales team so much time.",
        ],
    },
    "mobile": {
        "negative": [
            "The mobile app crashes constantly.",
            "Receipt scanning on Android is painfully slow.",
            "Mobile app is missing half the features.",
        ],
        "positive": ["Love sending invoices from my phone.", "The mobile app is great for expenses on the road."],
    },
    "onboarding": {
        "negative": ["Onboarding was rushed, we were left on our own.", "Importing our old data was a nightmare."],
        "positive": ["Onboarding was smooth and well organised.", "The import team moved all our history in a week."],
    },
    "payments": {
        "negative": ["Payouts take too long to arrive.", "Card payment fees are high."],
        "positive": [
            "Clients pay much faster since we added the pay button.",
            "Getting paid online has cut our late payments in half.",
        ],
    },
}
NPS_SAME_CONNECTORS = [" ", " ", " Also, ", " On top of that, "]
NPS_CONTRAST_CONNECTORS = [" But ", " That said, ", " However, "]
NPS_CAMPAIGNS = [
    "2025-Q4 relationship survey",
    "2026-Q1 relationship survey",
    "2026-Q2 relationship survey",
    "2026-Q3 relationship survey",
    "Post-onboarding survey",
    "Support follow-up survey",
]
