"""Vocabulary and fact tables for `pipelines.samples` (plain data, standard library only).

Kept apart from the generator so its templates stay readable. Everything is a tuple, never a set:
`random.Random.choice` over a tuple is reproducible, iteration over a set of strings is not
(string hashing is randomised per process), and determinism is the point of the samples.
Astronomy facts are real but rounded; moon counts move as new ones are confirmed.
"""

# --- support: a fictional company "Brightwave" with a router and a subscription app -------------

FIRST_NAMES = ("Ana", "José", "Zoë", "Priya", "Liam", "Mei", "Omar", "Renée", "Søren", "Fatima",
               "Noah", "Chloé", "Kwame", "Ingrid", "Mateo", "Yuki", "Hannah", "Ravi", "Elif",
               "Tomás", "Grace", "Lukas", "Amara", "Dmitri")
LAST_NAMES = ("Möller", "García", "Nguyen", "Okafor", "Smith", "Kowalski", "Haddad", "Lindqvist",
              "Rossi", "Tanaka", "Dubois", "Patel", "Müller", "O'Brien", "Andersen", "Costa")
PRODUCTS = {"router": ("Nimbus X2 router", "Nimbus Mesh Mini"),
            "app": ("Tidy+ app", "Tidy+ Family app")}
DEVICES = ("iPhone 15", "Pixel 8", "Galaxy S23", "MacBook Air", "Windows laptop", "smart TV",
           "iPad", "Chromebook", "PlayStation 5")
ROOMS = ("home office", "upstairs bedroom", "kitchen", "living room", "basement", "garden shed",
         "kids' room", "café downstairs")
PLANS = ("Basic", "Plus", "Family", "Premium")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
CURRENCIES = ("$", "€", "£")
PRICES = ("4.99", "7.49", "9.99", "12.99", "14.99", "19.99", "24.00", "89.00", "129.00")
GREETINGS = ("Hi, this is {first}.", "Hello!", "Hey there!", "Good morning.", "Hi support!", "")

SYSTEM_PROMPT = ("You are Brightwave's support assistant for the {product}. Customer: {first} "
                 "{last}. Reply politely with numbered steps.")
# The fixed opening and closing are what a tiny model learns first: a measurable domain signal.
OPENING = "Thanks for contacting Brightwave Support, {first}. I'm sorry about {issue}."
STEPS_INTRO = "Here's what to do:"
FOLLOWUP_OPENING = "Happy to help with that too, {first}."
CLOSING = "Anything else? Just reply here. Have a great day!"

# Each topic: which product line, the issue phrase for the opening, user asks, and four ordered
# steps of which three are used (so replies vary but keep their order).
SUPPORT_TOPICS = (
    {"kind": "router", "issue": "the slow Wi-Fi", "asks": (
        "My {product} has been really slow in the {room} for {days} days. Speed tests show under "
        "{mbps} Mbps. What can I do?",
        "Wi-Fi on my {device} crawls whenever I'm in the {room}. The {product} is only a few "
        "metres away. Any ideas?",
        "Since {date} my internet is painfully slow on every device, including my {device}. Is "
        "something wrong with the {product}?"), "steps": (
        "Restart the {product} by unplugging it for 30 seconds.",
        "Move it off the floor and away from microwaves, ideally in the open near the {room}.",
        "Open the Brightwave app, go to Settings > Wi-Fi and set the channel to Auto.",
        "Run a new speed test on your {device} and send us the result if it stays under {mbps} "
        "Mbps.")},
    {"kind": "app", "issue": "the trouble signing in", "asks": (
        "I forgot my password for the {product} and the reset email never arrives at {email}. "
        "Can you help?",
        "I can't sign in to the {product} on my {device}. It says my password is wrong, but I'm "
        "sure it's right.",
        "Since {date} the {product} keeps logging me out and now my password doesn't work."),
        "steps": (
        "Go to the sign-in screen and tap 'Forgot password'.",
        "Enter {email} and check your spam folder; the link is valid for 30 minutes.",
        "Choose a new password with at least 10 characters.",
        "Sign out on your {device}, then sign in again with the new password.")},
    {"kind": "router", "issue": "being locked out of the router settings", "asks": (
        "I changed the admin password on my {product} and now I can't remember it. How do I "
        "reset it?",
        "Someone changed the settings on our {product} and I'm locked out of the admin page on "
        "my {device}. Help?"), "steps": (
        "With the {product} powered on, hold the reset button on the back for 10 seconds.",
        "Wait about {minutes} minutes until the light turns solid white.",
        "Connect to the default network printed on the sticker underneath.",
        "Open the Brightwave app on your {device} and set a new admin password.")},
    {"kind": "app", "issue": "the double charge", "asks": (
        "I was charged {amount} twice on {date} for my {product} subscription. Can you fix "
        "this?",
        "My bank statement shows two payments of {amount} for the {product}. I only have one "
        "account, registered to {email}."), "steps": (
        "Open Settings > Billing in the {product} and check that only one plan is active.",
        "Note the two charges of {amount} from {date}.",
        "Tap 'Report a billing problem' and choose 'Duplicate charge'.",
        "Expect the extra {amount} back on your card within {days} business days.")},
    {"kind": "router", "issue": "the problem with your order", "asks": (
        "The {product} from order {order} doesn't cover my whole flat. Can I return it for a "
        "refund?",
        "I'd like a refund for order {order}. The {product} arrived on {date} with a cracked "
        "case."), "steps": (
        "Open the Brightwave app and go to Orders > {order}.",
        "Tap 'Return item' and pick the reason that fits best.",
        "Pack the {product} with its adapter and attach the prepaid label we email to {email}.",
        "Your refund of {amount} is issued within {days} business days of the parcel arriving.")},
    {"kind": "router", "issue": "the delayed delivery", "asks": (
        "My order {order} for a {product} was due on {date}, but it still hasn't arrived.",
        "Where is my {product}? Order {order} has said 'in transit' for {days} days."), "steps": (
        "Open the tracking link in the confirmation email sent to {email}.",
        "Check with neighbours or your building's mailroom, as carriers often leave parcels there.",
        "Reply with order number {order} and we will open a trace with the carrier.",
        "If the parcel is lost, we ship a replacement {product} free of charge.")},
    {"kind": "app", "issue": "wanting to close your account", "asks": (
        "Please delete my {product} account and all my data. The email is {email}.",
        "How do I permanently delete my account? I don't use the {product} on my {device} "
        "anymore."), "steps": (
        "Cancel any active subscription first under Settings > Billing.",
        "Go to Settings > Privacy > Delete account in the {product}.",
        "Confirm with the code we send to {email}.",
        "Your data is erased within 30 days; you can download a copy before confirming.")},
    {"kind": "app", "issue": "wanting to cancel", "asks": (
        "I want to cancel my {plan} subscription to the {product} before the next charge of "
        "{amount}.",
        "How do I stop the {product} from renewing? I was billed {amount} on {date} and don't "
        "need it anymore."), "steps": (
        "Open the {product} on your {device} and go to Settings > Billing.",
        "Tap 'Manage subscription', then 'Cancel {plan} plan'.",
        "You keep access until the end of the current billing period.",
        "We send a confirmation to {email}, and no further charges of {amount} are made.")},
    {"kind": "app", "issue": "the plan that no longer fits", "asks": (
        "Can I switch my {product} from the {plan} plan to {new_plan}? I pay {amount} a month.",
        "The {plan} plan of the {product} is more than I need. How do I move to {new_plan}?"),
        "steps": (
        "Open Settings > Billing > Change plan in the {product}.",
        "Select {new_plan} and review the new monthly price.",
        "Confirm; the change applies from your next billing date.",
        "Any unused part of your {amount} payment is credited to your account.")},
    {"kind": "router", "issue": "the dropped connection", "asks": (
        "My {product} drops the internet every evening around {hour} pm. The light blinks "
        "orange.",
        "The light on the {product} keeps blinking orange and nothing connects, not even my "
        "{device}."), "steps": (
        "Check that the cable from the wall socket is firmly in the port marked WAN.",
        "In the Brightwave app, tap Router > Check for updates to install the latest firmware.",
        "Restart the {product} once the update finishes (about {minutes} minutes).",
        "If the light stays orange, reply with the time it happens so we can test your line.")},
)

# Second exchanges (about 10% of conversations): a short follow-up with two steps.
FOLLOWUPS = {
    "router": (
        ("Thanks! Can I also set up a guest network for visitors?", (
            "In the Brightwave app, tap Wi-Fi > Guest network.",
            "Choose a name and password, then tap Save.")),
        ("Great. How do I turn on parental controls for the {device}?", (
            "In the Brightwave app, open Family > Devices and pick the {device}.",
            "Set a bedtime or content filter and tap Save.")),
        ("One more thing: how do I see which devices are connected?", (
            "Open the Brightwave app and tap Router > Connected devices.",
            "Tap any unknown device and choose Block if you don't recognise it."))),
    "app": (
        ("Thanks. Can I also change my account email to a new address?", (
            "Go to Settings > Account > Email in the {product}.",
            "Enter the new address and confirm with the code we send to {email}.")),
        ("One more question: will I get an invoice for the {amount}?", (
            "Open Settings > Billing > Invoices in the {product}.",
            "Tap the payment from {date} to download the PDF.")),
        ("Also, can my partner share my {plan} plan?", (
            "Go to Settings > Family sharing in the {product}.",
            "Send an invite; they accept it from their own device."))),
}

# --- cooking ------------------------------------------------------------------------------------

# (dish, minutes, per-serving ingredients (amount, unit, item), steps, oven °C or 0)
DISHES = (
    ("spaghetti aglio e olio", 25, ((100, "g", "spaghetti"), (1.5, "cloves", "garlic"),
     (1.5, "tbsp", "olive oil"), (0.25, "tsp", "chilli flakes"), (1, "tbsp", "parsley")), (
     "Boil the spaghetti in well-salted water until al dente.",
     "Gently fry the sliced garlic and chilli in the oil until pale gold.",
     "Toss the drained pasta in the pan with a splash of pasta water.",
     "Finish with parsley and serve at once."), 0),
    ("a café-style omelette", 10, ((2, "", "eggs"), (10, "g", "butter"),
     (20, "g", "grated Gruyère"), (1, "pinch", "salt")), (
     "Beat the eggs with the salt until no streaks remain.",
     "Melt the butter in a non-stick pan over medium heat.",
     "Stir the eggs constantly until just set but still glossy.",
     "Add the Gruyère, fold in thirds and slide onto a warm plate."), 0),
    ("crème brûlée", 50, ((120, "ml", "double cream"), (1, "", "egg yolk"), (20, "g", "sugar"),
     (0.25, "tsp", "vanilla extract")), (
     "Heat the cream with the vanilla until steaming.",
     "Whisk the yolks with half the sugar, then pour in the cream.",
     "Bake in ramekins in a water bath until just set, then chill.",
     "Sprinkle with the remaining sugar and caramelise with a torch."), 150),
    ("a chickpea curry", 40, ((0.5, "", "onion"), (120, "g", "cooked chickpeas"),
     (100, "ml", "coconut milk"), (1, "tsp", "curry powder"), (80, "g", "spinach")), (
     "Soften the chopped onion in a little oil for 8 minutes.",
     "Stir in the curry powder and cook for 1 minute.",
     "Add the chickpeas and coconut milk and simmer for 15 minutes.",
     "Wilt in the spinach and season to taste."), 0),
    ("banana bread", 70, ((1, "", "ripe banana"), (60, "g", "flour"), (30, "g", "brown sugar"),
     (25, "g", "butter"), (0.5, "", "egg")), (
     "Mash the bananas and beat in the melted butter, sugar and egg.",
     "Fold in the flour with a pinch of baking soda.",
     "Pour into a lined loaf tin.",
     "Bake until a skewer comes out clean, about 55 minutes."), 175),
    ("red lentil soup", 45, ((60, "g", "red lentils"), (0.5, "", "carrot"), (0.5, "", "onion"),
     (300, "ml", "vegetable stock"), (0.5, "tsp", "cumin")), (
     "Fry the diced onion and carrot until soft.",
     "Add the cumin, lentils and stock and bring to a boil.",
     "Simmer for 25 minutes until the lentils collapse.",
     "Blend until smooth and finish with lemon juice."), 0),
    ("shakshuka", 30, ((200, "g", "chopped tomatoes"), (0.5, "", "red pepper"), (2, "", "eggs"),
     (0.5, "tsp", "paprika"), (1, "tbsp", "olive oil")), (
     "Soften the sliced pepper in the oil for 5 minutes.",
     "Add the paprika and tomatoes and simmer until thick.",
     "Make small wells and crack in the eggs.",
     "Cover and cook until the whites are set, about 6 minutes."), 0),
    ("potato salad, Möller family style", 35, ((200, "g", "waxy potatoes"),
     (1, "tbsp", "cider vinegar"), (50, "ml", "warm stock"), (0.25, "", "red onion"),
     (1, "tsp", "mustard")), (
     "Boil the potatoes in their skins until tender, then peel and slice.",
     "Whisk the stock, vinegar and mustard.",
     "Pour over the warm potatoes with the finely diced onion.",
     "Rest for 20 minutes so the potatoes soak up the dressing."), 0),
    ("jalapeño cornbread", 40, ((50, "g", "cornmeal"), (40, "g", "flour"), (80, "ml", "milk"),
     (0.5, "", "jalapeño"), (15, "g", "butter")), (
     "Mix the cornmeal and flour with a teaspoon of baking powder.",
     "Stir in the milk, melted butter and chopped jalapeño.",
     "Pour into a hot greased pan.",
     "Bake until golden, about 25 minutes."), 200),
    ("a chicken stir-fry", 20, ((150, "g", "chicken thigh"), (100, "g", "broccoli"),
     (1, "tbsp", "soy sauce"), (1, "tsp", "grated ginger"), (75, "g", "rice")), (
     "Cook the rice according to the packet.",
     "Stir-fry the sliced chicken in a very hot wok for 4 minutes.",
     "Add the broccoli and ginger and toss for 3 minutes.",
     "Splash in the soy sauce and serve over the rice."), 0),
    ("a mushroom risotto", 40, ((80, "g", "arborio rice"), (100, "g", "mushrooms"),
     (300, "ml", "hot stock"), (20, "g", "parmesan"), (10, "g", "butter")), (
     "Fry the sliced mushrooms until browned, then set aside.",
     "Toast the rice in the butter for 1 minute.",
     "Add the stock a ladle at a time, stirring, for about 18 minutes.",
     "Stir in the mushrooms and parmesan and rest for 2 minutes."), 0),
    ("fluffy pancakes", 20, ((60, "g", "flour"), (80, "ml", "milk"), (0.5, "", "egg"),
     (0.5, "tsp", "baking powder"), (5, "g", "sugar")), (
     "Whisk the flour, sugar and baking powder.",
     "Beat in the milk and egg until just combined.",
     "Cook ladlefuls in a buttered pan until bubbles form, then flip.",
     "Serve warm with fruit or maple syrup."), 0),
)
RECIPE_ASKS = ("Give me a recipe for {dish}.", "How do I make {dish}?",
               "Can you share a simple recipe for {dish}?",
               "I'd like to cook {dish} tonight. What do I need?")
RECIPE_INPUTS = ("Cooking for {n}. I only have one pan.", "Serves {n}, please keep it simple.",
                 "I need {n} portions and I'm a beginner.", "For {n} people, no nuts please.",
                 "{n} servings; I have about {mins} minutes.")
COOKING_TIPS = ("Taste and adjust the seasoning before serving.",
                "Read the whole recipe once before you start.",
                "Prepare all ingredients first; it makes the cooking calm.",
                "Leftovers keep for 2 days in the fridge.",
                "Warm the plates so the food stays hot.")

# Grams per US cup (approximate, spooned and levelled).
CUP_GRAMS = (("plain flour", 120), ("granulated sugar", 200), ("brown sugar", 220),
             ("butter", 227), ("white rice", 185), ("rolled oats", 90), ("cocoa powder", 85),
             ("honey", 340), ("icing sugar", 120), ("grated parmesan", 100))
EGG_DONENESS = (("runny", 6, "a liquid yolk and just-set white"),
                ("jammy", 7, "a soft, fudgy yolk"), ("firm", 10, "a firm, pale yolk"))
EGG_SIZES = (("medium", -0.5), ("large", 0), ("extra-large", 0.5))
# (vegetable, minutes at 200 °C, how to cut)
ROAST_VEG = (("carrots", 30, "batons"), ("potatoes", 40, "3 cm chunks"),
             ("butternut squash", 35, "2 cm cubes"), ("broccoli", 20, "florets"),
             ("cauliflower", 25, "florets"), ("Brussels sprouts", 25, "halves"),
             ("sweet potatoes", 30, "wedges"), ("red onions", 30, "wedges"))
# (rice, water per gram, minutes simmering, rest minutes)
RICE = (("basmati rice", 1.5, 12, 5), ("jasmine rice", 1.25, 12, 10),
        ("brown rice", 2.0, 35, 10), ("sushi rice", 1.1, 15, 10))
EGG_NOTES = ("Room-temperature eggs are less likely to crack.",  # indexed by "from the fridge"
             "Fridge-cold eggs need about 30 seconds more; that is included above.")
# Per technique: (instruction templates, short answer, three steps, note); fields come from
# samples._technique_fields. The parts are joined first and formatted once, so a literal brace
# in any of them would have to be doubled.
TECHNIQUES = {
    "eggs": (("How long should I boil {count} {size} {eggs} for a {done} yolk?",
              "Timing for {count} {size} {eggs}, {done} yolk, please."),
             "{mins} minutes for {result}", (
             "Bring a pot of water to a rolling boil (100 °C at sea level).",
             "Lower in the eggs with a spoon and set a timer for {mins} minutes.",
             "Move them to iced water for 2 minutes, then peel under the water."), "{note}"),
    "cups": (("Convert {grams} grams of {item} to cups.", "How many cups is {grams} g of {item}?"),
             "about {cups} cups", (
             "One US cup of {item} weighs about {per_cup} g.",
             "Divide: {grams} ÷ {per_cup} = {exact}.",
             "Round to the nearest quarter: {cups} cups."),
             "For baking, weighing is more accurate than cups, so keep the gram figure."),
    "oven": (("Convert {f} °F to Celsius for my oven.",
              "My American recipe says {f} °F. What is that in °C?"),
             "{c} °C, or {fan} °C in a fan oven", (
             "Subtract 32: {f} - 32 = {minus}.",
             "Multiply by 5/9: {exact}, so about {c} °C.",
             "For a fan oven, lower it by 20 °C to {fan} °C."),
             "Oven dials vary, so an oven thermometer is worth its small price."),
    "roast": (("How long should I roast {veg} at {temp} °C?",
               "What's the roasting time for {veg} in a {temp} °C oven?"),
              "about {mins} minutes", (
              "Cut the {veg} into {cut} of even size.",
              "Toss with 1 tbsp oil per 500 g, salt and pepper.",
              "Roast on one layer for about {mins} minutes, turning halfway."),
              "Crowded trays steam instead of browning, so use two trays if needed."),
    "rice": (("How much water do I need for {grams} g of {rice}?",
              "What's the water ratio for cooking {grams} g of {rice}?"),
             "{water} ml of water", (
             "Rinse the {rice} until the water runs almost clear.",
             "Add {water} ml of water and a pinch of salt, then bring to a boil.",
             "Cover, simmer on low for {simmer} minutes, then rest for {rest} minutes."),
             "Keep the lid on while it rests; the steam finishes the cooking."),
}
TECHNIQUE_INPUTS = ("I'm a complete beginner.", "Cooking on a gas stove.",
                    "I'm using an induction hob.", "This is for a dinner party tonight.",
                    "My kitchen scale is broken.", "Cooking at a holiday flat in Zürich.")

# --- astronomy ----------------------------------------------------------------------------------

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
# (name, order, known moons ~2024, mean distance AU, diameter km, year, feature, small-scope view,
#  mission)
PLANETS = (
    ("Mercury", 1, 0, 0.39, 4879, "88 Earth days",
     "the smallest planet, and its surface swings from about 430 °C by day to −180 °C at night",
     "it shows phases like a tiny Moon, though only low in the twilight sky",
     "MESSENGER orbited it from 2011 to 2015"),
    ("Venus", 2, 0, 0.72, 12104, "225 Earth days",
     "the hottest planet, with a thick carbon dioxide atmosphere that keeps it near 465 °C",
     "it shows clear phases, as Galileo Galilei noted in 1610",
     "Magellan mapped its surface with radar in the early 1990s"),
    ("Earth", 3, 1, 1.0, 12742, "365.25 days",
     "the only world known to host life and the only one with liquid oceans on its surface",
     "its own shimmering air blurs the finest detail of every target",
     "thousands of satellites now orbit it"),
    ("Mars", 4, 2, 1.52, 6779, "687 Earth days",
     "home to Olympus Mons, the tallest volcano in the Solar System at about 22 km",
     "its reddish disc and, near opposition, a white polar cap are visible",
     "rovers such as Curiosity and Perseverance explore its surface"),
    ("Jupiter", 5, 95, 5.2, 139820, "about 12 Earth years",
     "the largest planet, and its Great Red Spot is a storm wider than Earth",
     "its four largest moons and two dark cloud belts are easy to see",
     "Juno has orbited it since 2016"),
    ("Saturn", 6, 146, 9.5, 116460, "about 29 Earth years",
     "famous for rings of ice and rock that are mostly less than a kilometre thick",
     "its rings are visible even at modest magnification",
     "the Cassini–Huygens mission studied it from 2004 to 2017"),
    ("Uranus", 7, 28, 19.2, 50724, "about 84 Earth years",
     "tilted by about 98 degrees, so it rolls around the Sun on its side",
     "it appears as a small blue-green disc",
     "only Voyager 2 has visited it, in 1986"),
    ("Neptune", 8, 16, 30.1, 49244, "about 165 Earth years",
     "swept by the fastest winds measured on any planet, above 2,000 km/h",
     "it looks like a faint bluish star that needs a finder chart",
     "only Voyager 2 has visited it, in 1989"),
)
# (name, parent, diameter km, feature, discovery)
MOONS = (
    ("the Moon", "Earth", 3474, "its gravity drives most of Earth's ocean tides",
     "it has been watched since prehistory"),
    ("Io", "Jupiter", 3643, "it is the most volcanically active body in the Solar System",
     "Galileo Galilei discovered it in 1610"),
    ("Europa", "Jupiter", 3122, "an ice shell likely hides a salty ocean beneath its surface",
     "Galileo Galilei discovered it in 1610"),
    ("Ganymede", "Jupiter", 5268, "it is the largest moon in the Solar System, bigger than Mercury",
     "Galileo Galilei discovered it in 1610"),
    ("Callisto", "Jupiter", 4821, "its surface is one of the most heavily cratered known",
     "Galileo Galilei discovered it in 1610"),
    ("Titan", "Saturn", 5150, "it has a thick atmosphere and lakes of liquid methane and ethane",
     "Christiaan Huygens discovered it in 1655"),
    ("Enceladus", "Saturn", 504, "geysers near its south pole spray water vapour into space",
     "William Herschel discovered it in 1789"),
    ("Triton", "Neptune", 2707, "it orbits backwards and is probably a captured dwarf planet",
     "William Lassell discovered it in 1846"),
    ("Phobos", "Mars", 22, "it is slowly spiralling inward and will one day break apart",
     "Asaph Hall discovered it in 1877"),
    ("Charon", "Pluto", 1212, "it is so large that it and Pluto orbit a point between them",
     "James Christy discovered it in 1978"),
    ("Miranda", "Uranus", 471, "it is scarred by cliffs up to about 20 km high",
     "Gerard Kuiper discovered it in 1948"),
)
# (name, constellation, distance ly, type, surface temperature K, feature)
STARS = (
    ("Sirius", "Canis Major", 8.6, "a white main-sequence star", 9940,
     "the brightest star in the night sky"),
    ("Betelgeuse", "Orion", 550, "a red supergiant", 3500,
     "so large that it would reach past the orbit of Mars if it replaced the Sun"),
    ("Vega", "Lyra", 25, "a white main-sequence star", 9600,
     "a long-standing reference point for measuring the brightness of other stars"),
    ("Polaris", "Ursa Minor", 430, "a yellow supergiant", 6000,
     "almost directly above Earth's north pole, which makes it a guide for navigation"),
    ("Proxima Centauri", "Centaurus", 4.2, "a red dwarf", 3000,
     "the closest known star to the Sun and the host of at least one planet"),
    ("Rigel", "Orion", 860, "a blue supergiant", 12100,
     "tens of thousands of times more luminous than the Sun"),
    ("Aldebaran", "Taurus", 65, "an orange giant", 3900,
     "the red-orange eye of the bull in the winter sky"),
    ("Antares", "Scorpius", 550, "a red supergiant", 3600,
     "named 'rival of Mars' because of its colour"),
    ("Arcturus", "Boötes", 37, "an orange giant", 4300,
     "the brightest star in the northern half of the sky"),
    ("Alpha Centauri A", "Centaurus", 4.4, "a yellow main-sequence star much like the Sun", 5800,
     "part of the nearest star system to our own"),
)
# (name, first light year, aperture m, kind, location, feature)
TELESCOPES = (
    ("Hubble Space Telescope", 1990, 2.4, "space telescope", "in low Earth orbit",
     "helped pin down the expansion rate of the universe and took the Hubble Deep Field"),
    ("James Webb Space Telescope", 2022, 6.5, "infrared space telescope",
     "near the Sun–Earth L2 point, 1.5 million km away",
     "observes some of the earliest galaxies with a gold-coated segmented mirror"),
    ("Keck I telescope", 1993, 10.0, "optical and infrared telescope", "on Mauna Kea in Hawaii",
     "pioneered a primary mirror built from 36 hexagonal segments"),
    ("Very Large Telescope", 1998, 8.2, "array of four optical telescopes",
     "at Cerro Paranal in Chile's Atacama Desert",
     "took one of the first direct images of a planet beyond the Solar System"),
    ("Hale Telescope", 1948, 5.1, "reflecting telescope", "at Palomar Observatory in California",
     "was the largest effective telescope in the world for decades"),
    ("Yerkes refractor", 1897, 1.02, "refracting telescope", "at Yerkes Observatory in Wisconsin",
     "remains the largest refracting telescope ever used for research"),
    ("Kepler space telescope", 2009, 0.95, "space photometer", "in an Earth-trailing solar orbit",
     "found thousands of exoplanets by watching stars dim as planets passed in front"),
    ("Gaia spacecraft", 2014, 1.45, "astrometry spacecraft", "at the Sun–Earth L2 point",
     "measured the positions and motions of more than a billion stars"),
    ("Subaru Telescope", 1999, 8.2, "optical-infrared telescope", "on Mauna Kea in Hawaii",
     "has one of the widest fields of view among the large telescopes"),
    ("Spitzer Space Telescope", 2003, 0.85, "infrared space telescope",
     "in an Earth-trailing solar orbit",
     "studied dust, cool stars and distant galaxies until 2020"),
    ("Arecibo Telescope", 1963, 305.0, "radio telescope", "in Puerto Rico",
     "sent the Arecibo message in 1974 before collapsing in 2020"),
    ("Chandra X-ray Observatory", 1999, 1.2, "X-ray space telescope",
     "in a long elliptical Earth orbit",
     "images hot gas around black holes and in galaxy clusters"),
)
APERTURES_MM = (70, 80, 90, 102, 114, 127, 130, 150, 200, 254)

# Per entity kind: (intro templates, fact templates). Fields come from samples._note_fields.
NOTE_TEMPLATES = {
    "planet": (
        ("{name} is the {ordinal} planet from the Sun, about {au} AU away on average.",
         "The {ordinal} planet from the Sun, {name}, orbits at roughly {au} AU."),
        ("{name} is {feature}.", "It has {moons}.", "One year on {name} lasts {year}.",
         "Its diameter is about {diameter} km, {ratio} times that of Earth.",
         "Through a {scope} mm telescope, {view}.", "In spaceflight terms, {mission}.")),
    "moon": (
        ("{Name} is a moon of {parent}, about {diameter} km across.",
         "Among the moons of {parent}, {name} measures roughly {diameter} km."),
        ("Its most striking trait: {feature}.", "{found}.",
         "At {diameter} km, it is {versus} than the planet Mercury.",
         "{Name} is tidally locked, keeping one face turned towards {parent}.",
         "Moons like this help scientists test ideas about how the Solar System formed.")),
    "star": (
        ("{name} is {type} in the constellation {constellation}.",
         "In {constellation} lies {name}, {type}."),
        ("It is about {distance} light-years away, so the light we see left it {distance} years "
         "ago.", "{name} is {feature}.",
         "Its surface temperature is roughly {kelvin} K, against about 5,800 K for the Sun.",
         "Even through {scope} mm of aperture it stays a point of light: stars are too far away "
         "to show a disc.",
         "A star's colour reveals its temperature: red stars are cool, blue ones hot.")),
    "telescope": (
        ("The {name} is {a} {type} {where}.", "Located {where}, the {name} is {a} {type}."),
        ("It began observing in {year}.", "The {name} {feature}.",
         "Its main aperture is {aperture} m across.",
         "Bigger apertures collect more light and resolve finer detail.",
         "A {aperture} m mirror gathers roughly {gain} times more light than a dark-adapted "
         "human eye.")),
}

SOLAR_SYSTEM_DOC = """The Solar System

Eight planets orbit the Sun. Mercury, Venus, Earth and Mars are small rocky worlds; Jupiter, \
Saturn, Uranus and Neptune are giants of gas and ice.

{spotlight}

Moons are common among the giants: {moons}.

Distances are measured in astronomical units (AU): Earth orbits at 1 AU, about 150 million km \
from the Sun, and Neptune near 30 AU. Sunlight reaches Earth in about 8 minutes and Neptune in \
just over 4 hours.
"""
TELESCOPES_DOC = """Telescopes

Galileo Galilei turned a small refractor to the sky in 1609. Isaac Newton built a reflector in \
1668, and mirrors have grown ever since.

{spotlight}

Refractors bend light with lenses; reflectors gather it with mirrors, which can be supported \
from behind and so grow far larger. Radio dishes collect radio waves instead of visible light.

Space telescopes avoid the blurring of the air, while ground-based giants collect far more light.
"""
