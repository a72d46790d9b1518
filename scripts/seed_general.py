"""Hand-written general instructions for the seed SFT set (read by scripts/make_seed_set.py).

Each entry is (kind, instruction, reply): a concise, helpful assistant-style answer. Topics were
chosen away from the bundled prompts (`cream_engine/data/prompts.jsonl`, the pool the loop
generates on) and the evaluation sets; make_seed_set.py checks that no text overlaps them.

Standard library only.
"""

from __future__ import annotations

GENERAL: list[tuple[str, str, str]] = [
    # -- explain a concept ------------------------------------------------------------------
    ("explain", "Explain what a lever is and give an everyday example.",
     ("A lever is a simple machine: a stiff bar that turns around a fixed point called the "
      "fulcrum. Pushing on one end moves a load at the other, and the farther your push is from "
      "the fulcrum, the less force you need.\n\nEveryday example: a bottle opener. The edge "
      "resting on the cap is the fulcrum, your hand lifts the long handle, and the short end "
      "pries the cap off with little effort. Seesaws, scissors and wheelbarrows are levers too.")),
    ("explain", "Why does a hot-air balloon rise?",
     ("A burner heats the air inside the balloon. Hot air spreads out, so the air inside "
      "becomes lighter (less dense) than the cooler air around it. The surrounding air pushes up "
      "on the lighter balloon, much as water pushes a cork up, and it rises. To come down, the "
      "pilot lets the air cool or releases some through a vent at the top.")),
    ("explain", "In simple terms, what is an ecosystem?",
     ("An ecosystem is a community of living things (plants, animals, fungi, bacteria) together "
      "with the non-living things they depend on, such as water, soil, sunlight and air. Every "
      "part affects the others: plants feed insects, insects feed birds, and fallen leaves feed "
      "the soil. A pond, a forest and even a rotting log are ecosystems of different sizes.")),
    ("explain", "Explain what DNA does in a living thing.",
     ("DNA is a long molecule inside cells that works like an instruction manual. Its sequence "
      "of chemical letters spells out how to build proteins, and proteins do most of the work "
      "in a body: they build tissues, digest food and carry messages. When a cell divides it "
      "copies its DNA, and parents pass DNA to their children, which is why children resemble "
      "their parents.")),
    ("explain", "What is a spreadsheet used for?",
     ("A spreadsheet is a grid of rows and columns for organizing and calculating with data. "
      "People use it to:\n- keep lists and records, such as inventories or contact lists;\n"
      "- do calculations with formulas that update when the numbers change;\n- sort and filter "
      "data to find what they need;\n- turn numbers into charts.\nCommon examples are Excel, "
      "Google Sheets and LibreOffice Calc.")),
    ("explain", "What is a file extension, such as .txt or .jpg?",
     ("A file extension is the short ending after the last dot in a file name. It tells the "
      "computer (and you) what kind of data the file holds and which program should open it: "
      ".txt is plain text, .jpg is a photo, .pdf is a document and .mp3 is audio. Renaming the "
      "extension does not change the data inside, so a renamed file may stop opening properly.")),
    ("explain", "Explain what erosion is, with an example.",
     ("Erosion is the slow wearing away and carrying off of rock and soil by water, wind, ice "
      "or gravity. Rain washes soil down hills, rivers carve valleys, and wind blows sand "
      "across deserts.\n\nExample: over millions of years the Colorado River cut through layers "
      "of rock to form the Grand Canyon.")),
    ("explain", "Why do we have leap years?",
     ("The Earth takes about 365 and a quarter days to go around the Sun, but a normal calendar "
      "year has 365 days. Without a fix, the calendar would drift by about one day every four "
      "years, and the seasons would slowly shift. Adding a 29 February every fourth year keeps "
      "the calendar in step. Years divisible by 100 skip it unless they are also divisible by "
      "400, which corrects the small remaining error.")),
    ("explain", "What is a palindrome? Give a few examples.",
     ("A palindrome is a word, number or phrase that reads the same forwards and backwards, "
      "usually ignoring spaces and punctuation.\n\nExamples:\n- words: level, radar, kayak\n"
      "- numbers: 121, 4554\n- a phrase: \"Never odd or even\"")),
    ("explain", "Explain supply and demand in everyday language.",
     ("Supply is how much of something is available; demand is how much people want to buy. "
      "When many people want something that is scarce, sellers can charge more, so prices go "
      "up. When there is plenty of something and few buyers, prices fall. For example, "
      "strawberries are cheap in summer when farms have lots of them and dearer in winter.")),
    ("explain", "How does a compass know which way is north?",
     ("A compass needle is a small magnet that can spin freely. The Earth itself acts like a "
      "giant magnet, and its magnetic field pulls the needle into line with it, so one end "
      "points toward the magnetic north pole. Magnetic north is close to, but not exactly at, "
      "the geographic North Pole, so maps often note the small difference.")),
    ("explain", "What is friction? Give two examples.",
     ("Friction is the force that resists when two surfaces rub or slide against each other. It "
      "slows moving things down and turns some of their motion into heat.\n\nExamples:\n"
      "- Shoe soles grip the floor, which keeps you from slipping.\n- Rubbing your hands "
      "together warms them.")),
    ("explain", "Explain what an algorithm is by comparing it to a recipe.",
     ("An algorithm is a precise list of steps that solves a problem, much like a recipe. A "
      "recipe lists the ingredients (the input), gives the steps in order, and ends with a dish "
      "(the output). An algorithm does the same for a computer: for example, to find the "
      "smallest card in a pile, look at each card in turn and remember the smallest one seen so "
      "far. Anyone who follows the steps exactly gets the same result.")),
    ("explain", "Why do people sweat?",
     ("Sweating cools the body. When you get hot from exercise or warm weather, glands in your "
      "skin release sweat, which is mostly water. As the sweat evaporates it carries heat away "
      "from the skin, bringing your temperature back down. That is also why you should drink "
      "more water when you sweat a lot.")),
    ("explain", "What is a calorie in food?",
     ("A calorie is a unit of energy. On food labels it measures how much energy your body can "
      "get from eating that food. Your body uses this energy for everything from breathing to "
      "running; energy you take in but do not use is stored, mostly as fat. Food labels "
      "usually mean kilocalories, even when they just say \"calories\".")),
    ("explain", "What is the equator?",
     ("The equator is an imaginary line around the middle of the Earth, halfway between the "
      "North and South Poles. It divides the planet into the Northern and Southern Hemispheres "
      "and is the line of 0 degrees latitude. Places near it get strong sunlight all year, so "
      "they tend to be warm and have little difference between seasons.")),
    ("explain", "Explain evaporation in a couple of sentences.",
     ("Evaporation is when a liquid turns into a gas at its surface, without boiling. Puddles "
      "dry up and wet clothes dry on a line because water molecules gain enough energy from "
      "warmth and wind to escape into the air as water vapor.")),
    # -- tips -------------------------------------------------------------------------------
    ("tips", "Give me some tips for taking better photos with my phone.",
     ("Here are some simple tips:\n1. Clean the lens: a smudge makes every photo hazy.\n2. Use "
      "natural light, and keep the light behind you rather than behind your subject.\n3. Tap "
      "the screen to focus on your subject.\n4. Turn on the grid and place the subject on one "
      "of the lines rather than dead center.\n5. Get closer instead of zooming in, which "
      "lowers quality.\n6. Hold still, or brace your arms, to avoid blur.")),
    ("tips", "How can I write clearer email subject lines?",
     ("- Say what the email is about and what you need: \"Approval needed: March budget by "
      "Friday\".\n- Put the most important words first; long subjects get cut off on phones.\n"
      "- Include a date or deadline when one matters.\n- Use one topic per email so the "
      "subject stays accurate.\n- Avoid vague subjects like \"Quick question\" or \"Update\".")),
    ("tips", "What are some good ways to take notes during a lecture?",
     ("1. Do not write everything down: capture key ideas, definitions and examples.\n"
      "2. Use short phrases, abbreviations and symbols.\n3. Leave space to add to your notes "
      "later.\n4. Mark questions or unclear points so you can ask about them.\n5. Review and "
      "tidy your notes within a day, while the lecture is fresh; a short summary at the end "
      "helps you remember.")),
    ("tips", "Give me tips for riding a bicycle safely in the city.",
     ("- Wear a helmet and make sure your brakes and lights work.\n- Ride in the same "
      "direction as traffic and use bike lanes where there are some.\n- Signal turns with "
      "your arm and look over your shoulder before moving over.\n- Watch for car doors opening "
      "and keep about a door's width from parked cars.\n- Assume drivers may not see you: make "
      "eye contact at junctions and wear bright colors.")),
    ("tips", "How can I waste less food at home?",
     ("1. Plan meals for the week and shop with a list.\n2. Check what you already have before "
      "buying more.\n3. Store food properly, and put older items at the front of the fridge.\n"
      "4. Freeze leftovers, bread and ripe fruit before they spoil.\n5. Cook with what needs "
      "using up: soups, stir-fries and omelets take almost anything.\n6. Learn the difference "
      "between \"use by\" (safety) and \"best before\" (quality) dates.")),
    ("tips", "I have to give a short speech from memory. How can I memorize it?",
     ("- Learn the structure first: write the main points as a short outline and memorize "
      "that.\n- Practice out loud, not just in your head, several times a day.\n- Learn it in "
      "chunks, adding one section at a time.\n- Link each point to a picture or a place in "
      "your home to recall the order.\n- Record yourself and listen back.\n- Aim to know the "
      "ideas, not every word, so a slip does not throw you.")),
    ("tips", "Any tips for keeping kids happy on a long car trip?",
     ("- Plan stops every couple of hours so everyone can stretch and run around.\n- Pack "
      "healthy snacks and water within reach.\n- Bring audiobooks, music or podcasts the whole "
      "family enjoys.\n- Play games such as I Spy or spotting license plates.\n- Give each "
      "child a small bag of quiet activities like stickers or books.\n- Leave early or around "
      "nap time if your kids sleep in the car.")),
    ("tips", "How can I start a small vegetable garden on my balcony?",
     ("1. Check how many hours of sun your balcony gets: most vegetables need six or more.\n"
      "2. Use containers with drainage holes and good potting mix, not garden soil.\n"
      "3. Start with easy plants such as lettuce, herbs, radishes or cherry tomatoes.\n"
      "4. Water when the top of the soil feels dry, more often in hot weather.\n5. Feed with a "
      "gentle fertilizer every few weeks.\n6. Make sure the balcony can take the weight of "
      "wet pots.")),
    ("tips", "What are easy ways to use less electricity at home?",
     ("- Switch off lights and devices when you leave a room, and unplug chargers you are not "
      "using.\n- Use LED bulbs.\n- Wash clothes in cold water and dry them on a line when you "
      "can.\n- Run the dishwasher and washing machine only when full.\n- Keep the fridge door "
      "closed and its seals clean.\n- Use a lid on pots; food heats faster.")),
    ("tips", "How do I run a good video call with my team?",
     ("- Share a short agenda beforehand and start on time.\n- Test your camera, microphone "
      "and connection a few minutes early.\n- Mute when you are not speaking.\n- Ask people by "
      "name for their views so everyone gets a turn.\n- Keep it short, and end by summarizing "
      "decisions and who does what.\n- Send brief notes afterwards.")),
    # -- rewrite ----------------------------------------------------------------------------
    ("rewrite", ("Rewrite this message so it sounds professional: \"hey can u send me the "
                 "numbers asap thx\""),
     "\"Hello, could you please send me the figures as soon as possible? Thank you.\""),
    ("rewrite", ("Fix the grammar in this sentence: \"Me and him goes to the market "
                 "yesterday.\""),
     ("\"He and I went to the market yesterday.\"\n\nChanges: \"He and I\" is the subject, "
      "and \"went\" is the past tense that matches \"yesterday\".")),
    ("rewrite", ("Make this sentence shorter without losing its meaning: \"Due to the fact "
                 "that it was raining heavily, we made the decision to stay inside the house.\""),
     "\"Because it was raining heavily, we decided to stay inside.\""),
    ("rewrite", "Rewrite in the active voice: \"The window was broken by the ball.\"",
     "\"The ball broke the window.\""),
    ("rewrite", "Rewrite in the passive voice: \"The committee approved the new plan.\"",
     "\"The new plan was approved by the committee.\""),
    ("rewrite", "Make this notice friendlier: \"Your form is incomplete. Fix it.\"",
     ("\"Thanks for sending your form! A few fields are still missing. Could you fill them in "
      "when you have a moment?\"")),
    ("rewrite", ("Rewrite this weather report so a young child can understand it: "
                 "\"Precipitation is expected to commence in the late afternoon.\""),
     "\"It will probably start to rain later this afternoon.\""),
    ("rewrite", ("Combine these into one sentence: \"The museum opens at nine. It closes at "
                 "five. It is free on Sundays.\""),
     "\"The museum is open from nine to five and is free on Sundays.\""),
    ("rewrite", ("Correct the spelling: \"I recieved you're mesage and will definately "
                 "reply tommorow.\""),
     "\"I received your message and will definitely reply tomorrow.\""),
    ("rewrite", ("Put this sentence in the past tense: \"She walks to the park and feeds the "
                 "ducks.\""),
     "\"She walked to the park and fed the ducks.\""),
    ("rewrite", "Rephrase this as a positive instruction: \"Don't forget to lock the door.\"",
     "\"Remember to lock the door.\""),
    # -- how-to ------------------------------------------------------------------------------
    ("howto", "How do I hang a picture frame straight on a wall?",
     ("1. Hold the frame where you want it and mark the top center lightly with a pencil.\n"
      "2. Measure from the top of the frame to its hanger, and mark that distance below your "
      "first mark.\n3. Put a nail or picture hook at the second mark, angled slightly "
      "downward.\n4. Hang the frame and check it with a level (or a level app on your phone).\n"
      "5. For wide frames, use two hooks at the same height so it stays straight.")),
    ("howto", "How do I iron a shirt?",
     ("1. Check the care label and set the iron to the right temperature.\n2. Start with the "
      "collar, ironing both sides from the points inward.\n3. Iron the cuffs, then the "
      "sleeves, laying each one flat.\n4. Iron the back, then each front panel, working "
      "around the buttons.\n5. Hang the shirt right away so it does not wrinkle again.")),
    ("howto", "How can I clear a slow bathroom sink without harsh chemicals?",
     ("1. Remove the stopper and pull out any hair or gunk, with gloves or a bent wire.\n"
      "2. Pour a kettle of hot (not boiling, if your pipes are plastic) water down the drain.\n"
      "3. Pour in half a cup of baking soda, then a cup of vinegar, and cover the drain for "
      "15 minutes.\n4. Flush with more hot water.\n5. If it is still slow, use a small plunger "
      "or clean the U-shaped pipe under the sink.")),
    ("howto", "How do I plant flower bulbs?",
     ("1. Plant spring-flowering bulbs in autumn, before the ground freezes.\n2. Pick a sunny "
      "spot with soil that drains well.\n3. Dig holes about two to three times as deep as the "
      "bulb is tall.\n4. Set each bulb in with the pointed end up.\n5. Cover with soil, press "
      "gently and water well.")),
    ("howto", "How do I convert a temperature from Celsius to Fahrenheit?",
     ("Multiply the Celsius temperature by 9/5 (or 1.8), then add 32.\n\nFor example, "
      "25 degrees Celsius is 25 × 1.8 + 32 = 77 degrees Fahrenheit. To go back, subtract 32 and "
      "multiply by 5/9.")),
    ("howto", "How do I count the words in a string in Python?",
     ("Split the string on whitespace and count the pieces:\n\n```python\ntext = \"the quick "
      "brown fox\"\ncount = len(text.split())\nprint(count)  # 4\n```\n\n`split()` with no "
      "argument splits on any run of spaces, tabs or newlines, so extra spaces do not create "
      "empty words.")),
    ("howto", "How can I check whether a number is even in Python?",
     ("Use the remainder operator `%`: a number is even when dividing it by 2 leaves no "
      "remainder.\n\n```python\ndef is_even(n):\n    return n % 2 == 0\n\nprint(is_even(10))  "
      "# True\nprint(is_even(7))   # False\n```")),
    ("howto", "How do I make overnight oats?",
     ("1. In a jar, mix half a cup of rolled oats with half a cup of milk (or a plant milk).\n"
      "2. Add a spoon of yogurt or chia seeds for creaminess, if you like.\n3. Sweeten with a "
      "little honey or mashed banana.\n4. Cover and refrigerate overnight, at least six hours.\n"
      "5. In the morning, stir and top with fruit or nuts. Eat it cold or warm it up.")),
    ("howto", "How should I hand-wash a wool sweater?",
     ("1. Fill a basin with cool or lukewarm water and a little wool detergent.\n2. Turn the "
      "sweater inside out and press it gently into the water; do not rub or wring it.\n3. Let "
      "it soak for about ten minutes, then rinse in clean water of the same temperature.\n"
      "4. Press out the water, roll it in a towel to absorb more.\n5. Dry it flat on a towel, "
      "reshaping it, away from direct heat.")),
    ("howto", "How do I find the perimeter of a triangle?",
     ("Add the lengths of its three sides. For example, a triangle with sides of 3 cm, 4 cm and "
      "5 cm has a perimeter of 3 + 4 + 5 = 12 cm. Make sure all sides use the same unit before "
      "adding.")),
    ("howto", "How do I set a goal that I will actually stick to?",
     ("Make it SMART:\n- Specific: \"run 5 km\" rather than \"get fit\".\n- Measurable: decide "
      "how you will track progress.\n- Achievable: stretch a little, but stay realistic.\n"
      "- Relevant: it should matter to you.\n- Time-bound: set a deadline.\nThen break it into "
      "small weekly steps, write it down and review your progress regularly.")),
    # -- short lists --------------------------------------------------------------------------
    ("list", "List five fruits that are rich in vitamin C.",
     "1. Oranges\n2. Kiwis\n3. Strawberries\n4. Guavas\n5. Papayas"),
    ("list", "List the seven continents.",
     ("1. Africa\n2. Antarctica\n3. Asia\n4. Australia (Oceania)\n5. Europe\n6. North America\n"
      "7. South America")),
    ("list", "Name five kitchen tools every beginner cook should have.",
     ("1. A sharp chef's knife\n2. A cutting board\n3. A medium frying pan\n4. A saucepan with "
      "a lid\n5. A wooden spoon or spatula")),
    ("list", "Suggest four fun indoor activities for kids on a rainy day.",
     ("1. Build a blanket fort and read stories inside it.\n2. Bake simple cookies together.\n"
      "3. Hold a treasure hunt with clues hidden around the house.\n4. Put on a puppet show "
      "with socks and a cardboard box.")),
    ("list", "Give me five words that rhyme with \"light\".",
     "1. Bright\n2. Night\n3. Kite\n4. White\n5. Flight"),
    ("list", "Write the first six multiples of 7.",
     "7, 14, 21, 28, 35, 42"),
    ("list", "What questions should I ask when viewing an apartment to rent?",
     ("1. What is included in the rent (water, heating, internet)?\n2. How long is the lease, "
      "and what happens if I need to leave early?\n3. How big is the deposit, and when is it "
      "returned?\n4. Who handles repairs, and how quickly?\n5. Are pets, guests or "
      "subletting allowed?\n6. What are the neighbors and the noise like?")),
    ("list", "Give three synonyms for \"happy\".",
     "1. Cheerful\n2. Joyful\n3. Content"),
    ("list", "What should I check on my car before a long drive?",
     ("1. Tire pressure and tread, including the spare.\n2. Oil and coolant levels.\n"
      "3. Windshield washer fluid and wipers.\n4. Lights and indicators.\n5. Brakes: listen "
      "for squeaks and feel for softness.\n6. That you have your license, insurance papers "
      "and a phone charger.")),
]
