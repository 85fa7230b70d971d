"""Triage on the demo: each scenario family's topic (from the shipped label set), the support teams, and a recent
surge of tickets about a topic the help center has no article for (invoice emails not arriving).

Resolved demo tickets carry the topic their agent set, so the workspace has labelled history to train on and to
route from; open ones are left for triage. Agents work in teams: most tickets of a topic are handled by its team.
"""

from __future__ import annotations

from copilot.demo.people import SUPPORT_AGENTS
from copilot.demo.tickets import Family

FAMILY_TOPICS: dict[str, str] = {
    "double_charge": "billing_charges",
    "login_2fa": "login_security",
    "sso_loop": "login_security",
    "failed_payment": "payments",
    "invoice_export": "invoices",
    "invoice_logo": "invoices",
    "api_rate_limit": "api_webhooks",
    "webhook_missing": "api_webhooks",
    "webhook_signature": "api_webhooks",
    "data_import": "data_import",
    "import_mapping": "data_import",
    "mobile_crash": "mobile_app",
    "receipt_scan": "mobile_app",
    "feature_request": "feature_request",
    "approval_workflow": "feature_request",
    "reminder_wording": "invoices",
    "cancellation": "cancellation",
    "downgrade": "plans_pricing",
    "gdpr_deletion": "privacy_legal",
    "dpa_request": "privacy_legal",
    "slow_performance": "performance",
    "integration_token": "integrations",
    "integration_duplicates": "integrations",
    "pricing_question": "plans_pricing",
    "pricing_seats": "plans_pricing",
    "email_delivery": "email_delivery",
}

# Help-center articles by topic (training text for the shipped head; articles not listed belong to no topic).
KB_TOPICS: dict[str, str] = {
    "How to request a refund": "billing_charges",
    "Why was I charged twice?": "billing_charges",
    "Credit notes": "billing_charges",
    "Reset two-factor authentication": "login_security",
    "Set up single sign-on (SAML)": "login_security",
    "User roles and permissions": "login_security",
    "Update your payment method": "payments",
    "Accept card payments with Stripe": "payments",
    "Export invoices": "invoices",
    "Customise invoice templates": "invoices",
    "Automatic payment reminders": "invoices",
    "Custom invoice numbering": "invoices",
    "Recurring invoices": "feature_request",
    "Multi-currency invoicing": "feature_request",
    "Invoice approval workflow": "feature_request",
    "API rate limits": "api_webhooks",
    "Webhook delivery and retries": "api_webhooks",
    "Import clients from a CSV file": "data_import",
    "Connect QuickBooks": "integrations",
    "Connect Salesforce": "integrations",
    "Connect Xero": "integrations",
    "Connect Shopify": "integrations",
    "Change or cancel your plan": "cancellation",
    "Plans and pricing": "plans_pricing",
    "Delete a client's personal data (GDPR)": "privacy_legal",
    "Data processing agreement": "privacy_legal",
    "Mobile app: scanning receipts": "mobile_app",
    "Mobile app crashes on launch": "mobile_app",
    "Speed up large reports": "performance",
}

TEAMS: dict[str, tuple[str, ...]] = {
    "billing": ("Priya Patel", "Samuel Okafor"),
    "accounts": ("Camille Moreau", "Liam Chen"),
    "product": ("Lucía Romero", "Liam Chen"),
    "developers": ("Kenji Sato", "Jonas Weber"),
    "technical": ("Jonas Weber", "Kenji Sato"),
    "privacy": ("Camille Moreau",),
}


def agents_for(family: str) -> list[str]:
    """Who may handle a ticket of this family: its team's agents six times in seven, anyone else once
    (as many entries as there are agents, so that drawing from it draws the same random numbers as before)."""
    from copilot.tasks.triage_labels import DEFAULT_LABELS

    queue = {label.name: label.queue for label in DEFAULT_LABELS}[FAMILY_TOPICS[family]]
    team = TEAMS[queue]
    cover = SUPPORT_AGENTS[sum(map(ord, family)) % len(SUPPORT_AGENTS)]
    return [team[n % len(team)] for n in range(len(SUPPORT_AGENTS) - 1)] + [cover]


SURGE_TICKETS = 24  # invoice-email problems in the last few weeks: the topic the help center does not cover
SURGE_DAYS = (0.5, 45)

EMAIL_DELIVERY = Family(
    name="email_delivery",
    subjects=[
        "Clients not receiving our invoice emails",
        "Invoice emails going to spam",
        "Payment reminders bounce",
        "Customers say the invoice never arrived",
    ],
    openings={
        "calm": [
            "Hi, several of our clients say they never received the invoice emails we sent on {date}. The invoices "
            "show as sent in Ledgerly. Can you check what happened?",
            "Hello, since last week our payment reminders seem to land in our clients' spam folders. Is there "
            "something we should set up on our side?",
        ],
        "confused": [
            "Invoice {invoice} says 'sent', but the accounts team at our client says nothing arrived. Where did the "
            "email go?",
        ],
        "frustrated": [
            "Three clients told us this week that our invoices never reached them. We are not getting paid because "
            "the emails don't arrive. What is going on?",
        ],
        "angry": [
            "Your emails are NOT being delivered. Half our clients never got their invoices this month and we are "
            "chasing payments by phone. Fix your email delivery!",
        ],
    },
    agent_replies=[
        "Hi {first}, thanks for reporting this. The emails for {invoice} were accepted by your client's mail server, "
        "so they were probably filtered as spam. I've asked our email team to check the delivery logs.",
        "Hi {first}, sorry about this. Some mail servers have started rejecting messages from our shared sending "
        "domain. Until it is fixed you can download the PDF and send it from your own mailbox.",
    ],
    followups={
        "calm": ["Thanks. Is there a way to see which clients did not get the email?"],
        "confused": ["So is the problem on our side or on yours?"],
        "frustrated": ["Any news? Two more clients say nothing arrived."],
        "angry": ["We are still chasing payments by phone. When will this be fixed?"],
    },
    notes=[
        "Bounces from Microsoft 365 recipients since the sending IP change; tracking it with the email provider.",
        "The customer's domain has no SPF record for our sending service; suggested adding it.",
    ],
    resolutions=[
        "Hi {first}, our email provider fixed the delivery problem and we re-sent the affected invoices. If a client "
        "still can't find one, ask them to look in their spam folder and mark the email as not spam.",
        "Hi {first}, to keep invoices out of spam, add our sending service to your domain's SPF record (Settings > "
        "Email > Sending domain shows the value to add), then re-send the invoice from the invoice page.",
    ],
    priority="high",
)
