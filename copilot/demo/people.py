"""Names, companies and the product the demo workspace is about (all invented)."""

PRODUCT = "Ledgerly"

FIRST_NAMES = [
    "Ana", "Liam", "Sofia", "Noah", "Mia", "Lucas", "Emma", "Mateo", "Olivia", "Ethan", "Isabel", "Arjun", "Chloe",
    "Daniel", "Priya", "Tomás", "Hannah", "Kenji", "Fatima", "Oscar", "Grace", "Yusuf", "Elena", "Marcus", "Leila",
    "Jonas", "Aisha", "Pedro", "Nora", "Samuel", "Ingrid", "Wei", "Camille", "Diego", "Zara", "Felix", "Amara",
    "Ravi", "Julia", "Omar", "Greta", "Hugo", "Maya", "Stefan", "Lucía", "Theo", "Nadia", "Carlos", "Freya", "Imran",
]
LAST_NAMES = [
    "Lima", "Chen", "Rossi", "Okafor", "Schmidt", "Nguyen", "García", "Patel", "Dubois", "Kowalski", "Haddad",
    "Johansson", "Tanaka", "Müller", "Fernández", "O'Brien", "Silva", "Novak", "Ahmed", "Martin", "Costa", "Berg",
    "Moreau", "Kim", "Hughes", "Rahman", "Weber", "López", "Andersen", "Murphy", "Sato", "Ibrahim", "Fischer",
    "Romero", "Laurent", "Walsh", "Mendes", "Lindqvist", "Park", "Bauer",
]

SUPPORT_AGENTS = ["Liam Chen", "Priya Patel", "Jonas Weber", "Camille Moreau", "Samuel Okafor", "Lucía Romero", "Kenji Sato"]
SALES_REPS = ["Dana Reyes", "Marcus Hughes", "Elena Novak", "Ravi Rahman", "Greta Lindqvist"]
SOLUTION_ENGINEERS = ["Omar Haddad", "Freya Andersen"]

COMPANY_FIRST = [
    "Northwind", "Bluefin", "Cedar", "Harbor", "Silverline", "Brightline", "Redwood", "Summit", "Pioneer", "Lumen",
    "Granite", "Meridian", "Oakridge", "Beacon", "Riverstone", "Copperleaf", "Evergreen", "Falcon", "Horizon", "Ironbridge",
    "Juniper", "Keystone", "Lakeside", "Maple", "Nimbus", "Orchard", "Polaris", "Quarry", "Sandstone", "Tidewater",
    "Upland", "Vantage", "Willow", "Zephyr", "Alder", "Bramble", "Crescent", "Driftwood", "Ember", "Foxglove",
    "Gullwing", "Highgate", "Ivory", "Jasper", "Kestrel",
]
COMPANY_SECOND = [
    "Logistics", "Health", "Studios", "Foods", "Analytics", "Dental", "Architects", "Coffee Roasters", "Outfitters",
    "Legal", "Robotics", "Travel", "Fitness", "Energy", "Media", "Labs", "Wholesale", "Consulting", "Pharmacy",
    "Marine", "Events", "Bakery", "Motors", "Academy", "Clinics",
]
INDUSTRIES = {
    "Logistics": "Transportation", "Health": "Healthcare", "Studios": "Media", "Foods": "Food & Beverage",
    "Analytics": "Software", "Dental": "Healthcare", "Architects": "Professional Services", "Coffee Roasters": "Food & Beverage",
    "Outfitters": "Retail", "Legal": "Professional Services", "Robotics": "Manufacturing", "Travel": "Hospitality",
    "Fitness": "Consumer Services", "Energy": "Energy", "Media": "Media", "Labs": "Biotech", "Wholesale": "Retail",
    "Consulting": "Professional Services", "Pharmacy": "Healthcare", "Marine": "Transportation", "Events": "Hospitality",
    "Bakery": "Food & Beverage", "Motors": "Automotive", "Academy": "Education", "Clinics": "Healthcare",
}
COUNTRIES = [
    ("United States", "en"), ("United States", "en"), ("United States", "en"), ("United Kingdom", "en"), ("Canada", "en"),
    ("Ireland", "en"), ("Australia", "en"), ("Germany", "de"), ("Spain", "es"), ("Mexico", "es"), ("France", "fr"),
    ("Netherlands", "en"), ("Sweden", "en"),
]
PLANS = ["Starter", "Growth", "Business", "Enterprise"]
SEGMENT_BY_PLAN = {"Starter": "smb", "Growth": "smb", "Business": "mid-market", "Enterprise": "enterprise"}
TITLES = [
    "Finance Manager", "Controller", "Head of Operations", "Accounts Payable Specialist", "CFO", "Office Manager",
    "IT Administrator", "Billing Coordinator", "Founder", "Operations Lead", "Bookkeeper", "VP Finance",
    "Engineering Manager", "Developer", "Customer Success Lead",
]
INTEGRATIONS = ["QuickBooks", "Xero", "Salesforce", "Slack", "Shopify", "Stripe", "HubSpot", "NetSuite"]
DEVICES = ["iPhone 15", "Pixel 8", "Samsung Galaxy S23", "iPad Air", "iPhone 13"]
