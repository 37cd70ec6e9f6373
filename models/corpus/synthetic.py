"""Rows this project wrote, only where no labelled public prompts of that kind were reachable
(SOURCES.md): instructions written for this corpus and filled with real text (`synthetic`), and
whole chat-style prompts written by hand for the classes whose public prompts are least like
what people type into a chat assistant (`handwritten/<label>.txt`, one prompt a line). The
handwritten prompts were written without reading the validation set's prompts.
"""
import csv
import io
import json
import os

from sources import row

HERE = os.path.dirname(os.path.abspath(__file__))


def handwritten():
    rows = []
    for name in sorted(os.listdir(os.path.join(HERE, "handwritten"))):
        label = name[:-4].replace("_hard_negatives", "")
        lines = open(os.path.join(HERE, "handwritten", name), encoding="utf-8").read().splitlines()
        for i, text in enumerate(l for l in lines if l.strip() and not l.startswith("#")):
            rows.append(row("handwritten", f"{name[:-4]}:{i}", text, label))
    return rows


# Instructions written for this corpus, filled with real text: Wikipedia sentences shipped in
# clinc150 (CC-BY-SA via the dataset), people and places from presidio's fake-name table (MIT),
# and utterances from clinc150 for phrases and dialogue turns.

SUMMARIZE = [
    "Summarize: {doc}", "Summarize this article in two sentences.\n\n{doc}", "TL;DR of the following text:\n{doc}",
    "Give me a one-paragraph summary of this:\n{doc}", "Write a short summary of the passage below.\n{doc}",
    "What are the main points of this text? Keep it brief.\n\n{doc}", "Condense the following into three bullet points:\n{doc}",
    "Sum the following article in brief: {doc}", "{doc}\n\nSummarize the text above in one sentence.",
    "Can you give me the gist of this?\n{doc}", "Write an abstract for this document:\n{doc}",
    "Summarize this dialogue: {dialogue}", "Briefly summarize the conversation below.\n{dialogue}",
    "{dialogue}\n\nWhat was this conversation about? Give a short summary.", "Write a headline that sums up this news story: {doc}",
    "Shorten this to a couple of lines for a newsletter: {doc}", "Recap the key takeaways from these notes:\n{doc}",
    "Please provide a concise summary of the following report.\n\n{doc}", "Summarise the following for a busy executive:\n{doc}",
    "In a few sentences, what does this passage say?\n{doc}",
]
EXTRACT = [
    "Extract all the dates mentioned in the following text:\n{doc}", "List every person and organization named in this passage.\n{doc}",
    "From the text below, pull out all place names as a JSON array.\n{doc}", "Identify the named entities in this paragraph and label each one.\n{doc}",
    "Read the following paragraph and extract the answer for the question: {question}\n\n{doc}",
    "Return a JSON object with the fields name, year and location from this text:\n{doc}", "Find all the numbers in this passage and say what each refers to.\n{doc}",
    "Read the bio below and give details on {person}'s birth date, occupation and nationality.\n\nBio: {bio}",
    "Extract the contact details (name, address, phone) from this record as JSON: {record}",
    "Fill in the table with each company and the city it is based in, from the text:\n{doc}",
    "Classify the sentiment of each sentence below as positive, negative or neutral.\n{doc}",
    "Given these categories - History, Science, Sports, Art - assign the following passage to one of them.\n{doc}",
    "What is the main topic of this text? Answer with a single label.\n{doc}", "Pull out the key terms from this paragraph.\n{doc}",
    "Based on the passage, answer: {question}\n{doc}", "Tag each sentence of the text with the entity types it mentions.\n{doc}",
    "Parse the following text into structured fields (who, what, when, where):\n{doc}",
    "Which years are mentioned in the following passage? List them in order.\n{doc}",
]
CREATIVE_FORMS = [
    "a short story", "a poem", "a haiku", "song lyrics", "a limerick", "a blog post", "a product description", "a speech",
    "a wedding toast", "a cover letter", "an advertising slogan", "a screenplay scene", "a dialogue between two characters",
    "a fable", "a sonnet", "a diary entry", "a persuasive essay", "a birthday message", "a bedtime story", "a tweet thread",
    "an opening paragraph for a novel", "a marketing email", "a eulogy", "a rap verse",
]
CREATIVE = [
    "Write {form} about {topic}.", "Compose {form} inspired by {topic}.", "Can you write me {form} about {topic}?",
    "I need {form} on the theme of {topic}.", "Draft {form} that mentions {topic}.", "Create {form} featuring {topic}, with a twist ending.",
    "Please write {form} for my friend about {topic}.", "Write {form} in the style of a 19th-century writer about {topic}.",
    "Make up {form} where {topic} is the main character.", "Rewrite this paragraph to make it more vivid and engaging: {doc}",
    "Write a fictional news report about {topic}.", "Write {form} from the point of view of {topic}.",
]
LANGS = ["French", "German", "Spanish", "Italian", "Portuguese", "Japanese", "Chinese", "Korean", "Russian", "Arabic", "Dutch", "Hindi", "Turkish", "Polish", "Swedish", "Greek"]
TRANSLATE = [
    "Translate to {lang}: {sent}", "Translate the following sentence into {lang}.\n{sent}", "How do you say \"{phrase}\" in {lang}?",
    "What is \"{phrase}\" in {lang}?", "Can you translate this paragraph into {lang} for me?\n\n{doc}", "{sent}\n\nTranslate the text above into {lang}.",
    "Please render this in {lang}: {sent}", "I need this in {lang}, keeping the tone formal: {sent}", "how would i say {phrase} in {lang}",
    "Translate this from English to {lang} and keep the formatting:\n{doc}", "what's the {lang} word for {word}",
    "Give me the {lang} translation of: {phrase}", "Put this email into {lang}: {sent}",
]


def synthetic(s, rng):
    sents = [l.strip() for l in s.text("clinc150", "data/all_wiki_sents.txt").splitlines() if 40 < len(l.strip()) < 400]
    utter = [t for t, _ in json.loads(s.text("clinc150", "data/data_full.json"))["train"]]
    people = list(csv.DictReader(io.StringIO(s.text("presidio", "presidio_evaluator/data_generator/raw_data/FakeNameGenerator.com_3000.csv"))))

    def doc(lo=3, hi=7):
        i = rng.randrange(len(sents) - hi)
        return " ".join(sents[i:i + rng.randint(lo, hi)])

    def dialogue():
        names = [p["GivenName"] for p in rng.sample(people, 2)]
        return "\n".join(f"{names[k % 2]}: {rng.choice(utter)}" for k in range(rng.randint(3, 7)))

    def person():
        p = rng.choice(people)
        return p, f"{p['GivenName']} {p['Surname']}"

    def topic():
        words = [w for w in rng.choice(sents).split() if w[:1].isupper() and len(w) > 3]
        return rng.choice(["a lighthouse keeper", "the first day of spring", "a lost robot", "my grandmother's kitchen", "the ocean at night",
                           "a city that never sleeps", "friendship", "a dragon who is afraid of fire", "moving to a new country", "coffee"]
                          + [w.strip(".,;:()") for w in words[:2]])

    rows = []
    for i in range(520):
        t = rng.choice(SUMMARIZE)
        rows.append(row("synthetic", f"summarization:{i}", t.format(doc=doc(4, 9), dialogue=dialogue()), "summarization"))
    for i in range(520):
        t = rng.choice(EXTRACT)
        p, name = person()
        bio = f"{name} (born {p['Birthday']}) is a {p['Occupation'].lower()} from {p['City']}. " + doc(2, 4)
        record = f"{name}, {p['StreetAddress']}, {p['City']} {p['ZipCode']}, tel {p['TelephoneNumber']}"
        question = rng.choice(["Who founded it?", "When did it happen?", "Where is it located?", "What is the name of the person mentioned first?", "How many were there?"])
        rows.append(row("synthetic", f"extraction:{i}", t.format(doc=doc(), question=question, person=name, bio=bio, record=record), "extraction"))
    for i in range(520):
        t = rng.choice(CREATIVE)
        rows.append(row("synthetic", f"creative_writing:{i}", t.format(form=rng.choice(CREATIVE_FORMS), topic=topic(), doc=doc(1, 3)), "creative_writing"))
    for i in range(420):
        t = rng.choice(TRANSLATE)
        phrase = rng.choice(utter)
        word = rng.choice([w for w in phrase.split() if len(w) > 3] or [phrase])
        rows.append(row("synthetic", f"translation:{i}", t.format(lang=rng.choice(LANGS), sent=rng.choice(sents), phrase=phrase, word=word, doc=doc(2, 4)), "translation"))
    return rows


