"""Language identification of customer messages (copilot/language.py: py3langid, restricted to the served languages).

The sample: the demo workspace's Spanish, German and French customer messages (``copilot.demo.tickets.LOCALISED``
and its thank-you follow-ups), 200 lines per language written for this eval (``WRITTEN``: support requests put
together from hand-written openings, problems and closings; twenty of them the problem alone, as short as chat
messages), and 200 English lines: banking77 messages when ../shared/data is present, else the demo's English
openings. Every line is classified on its own, as triage classifies a ticket's customer text.

Run: python -m evals.studies.language_id
"""

from __future__ import annotations

import csv
import random
import sys
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path

from copilot.language import DEFAULT_LANGUAGES, detect_language
from evals.data import DataUnavailable, dataset

PER_LANGUAGE = 200
WRITTEN: dict[str, dict[str, list[str]]] = {
    "es": {
        "open": ["Hola,", "Buenos días,", "Buenas tardes,", "Hola equipo,", "Estimado soporte,"],
        "problem": [
            "no puedo descargar las facturas en PDF desde ayer.",
            "el informe de ventas tarda más de un minuto en cargar.",
            "nuestros clientes dicen que no reciben los recordatorios de pago.",
            "la aplicación del móvil se cierra al abrirla.",
            "hemos pagado dos veces la misma suscripción este mes.",
            "la sincronización con el banco se ha detenido.",
            "quiero cambiar el plan a uno más barato.",
            "necesito añadir a dos compañeros nuevos a la cuenta.",
            "el logotipo no aparece en las facturas que enviamos.",
            "la importación de clientes falla en la fila doce.",
            "¿cómo puedo borrar los datos de un antiguo cliente?",
            "¿dónde encuentro el contrato de tratamiento de datos?",
            "los códigos de verificación no llegan a mi teléfono.",
            "la tarjeta fue rechazada y la cuenta aparece suspendida.",
            "¿se pueden enviar facturas recurrentes en dólares?",
            "el webhook de pagos dejó de funcionar el lunes.",
            "¿por qué ha subido el precio de la renovación?",
            "queremos cancelar la suscripción a final de mes.",
            "el escáner de recibos no guarda la foto.",
            "aparecen clientes duplicados después de conectar la tienda.",
        ],
        "close": ["Gracias.", "Un saludo.", "Quedo a la espera.", "¿Me pueden ayudar?", "Es bastante urgente."],
    },
    "de": {
        "open": ["Hallo,", "Guten Tag,", "Guten Morgen,", "Liebes Support-Team,", "Sehr geehrte Damen und Herren,"],
        "problem": [
            "ich kann seit gestern keine Rechnungen als PDF herunterladen.",
            "der Umsatzbericht lädt länger als eine Minute.",
            "unsere Kunden bekommen die Zahlungserinnerungen nicht.",
            "die App stürzt beim Öffnen sofort ab.",
            "wir haben dieses Monat das Abo zweimal bezahlt.",
            "die Synchronisierung mit der Bank ist stehen geblieben.",
            "ich möchte in einen günstigeren Tarif wechseln.",
            "wir brauchen zwei weitere Benutzer für unser Team.",
            "unser Logo fehlt auf den versendeten Rechnungen.",
            "der Import der Kundenliste bricht in Zeile zwölf ab.",
            "wie löschen wir die Daten eines ehemaligen Kunden?",
            "wo finden wir den Vertrag zur Auftragsverarbeitung?",
            "die Bestätigungscodes kommen nicht auf meinem Handy an.",
            "die Karte wurde abgelehnt und das Konto ist gesperrt.",
            "kann man wiederkehrende Rechnungen auch in Dollar schicken?",
            "der Webhook für Zahlungen funktioniert seit Montag nicht mehr.",
            "warum ist der Preis bei der Verlängerung gestiegen?",
            "wir wollen das Abonnement zum Monatsende kündigen.",
            "der Belegscanner speichert das Foto nicht.",
            "nach der Verbindung mit dem Shop sind alle Kunden doppelt.",
        ],
        "close": [
            "Danke.",
            "Viele Grüße.",
            "Vielen Dank im Voraus.",
            "Können Sie helfen?",
            "Es ist ziemlich dringend.",
        ],
    },
    "fr": {
        "open": ["Bonjour,", "Bonsoir,", "Bonjour à tous,", "Chère équipe,", "Madame, Monsieur,"],
        "problem": [
            "je ne peux plus télécharger les factures en PDF depuis hier.",
            "le rapport des ventes met plus d'une minute à s'afficher.",
            "nos clients ne reçoivent pas les relances de paiement.",
            "l'application mobile se ferme dès qu'on l'ouvre.",
            "nous avons payé deux fois le même abonnement ce mois-ci.",
            "la synchronisation avec la banque s'est arrêtée.",
            "je voudrais passer à une formule moins chère.",
            "il nous faut deux utilisateurs de plus pour l'équipe.",
            "notre logo n'apparaît pas sur les factures envoyées.",
            "l'import de la liste des clients échoue à la ligne douze.",
            "comment supprimer les données d'un ancien client ?",
            "où trouver l'accord de traitement des données ?",
            "les codes de vérification n'arrivent pas sur mon téléphone.",
            "la carte a été refusée et le compte est suspendu.",
            "peut-on envoyer des factures récurrentes en dollars ?",
            "le webhook des paiements ne marche plus depuis lundi.",
            "pourquoi le prix a-t-il augmenté au renouvellement ?",
            "nous voulons résilier l'abonnement à la fin du mois.",
            "le scanner de reçus n'enregistre pas la photo.",
            "après la connexion à la boutique, tous les clients sont en double.",
        ],
        "close": ["Merci.", "Cordialement.", "Merci d'avance.", "Pouvez-vous nous aider ?", "C'est assez urgent."],
    },
}


def written_lines(language: str, n: int = PER_LANGUAGE, seed: int = 0) -> list[str]:
    """``n`` distinct support lines: each problem alone (as short as a chat message), then openings, problems and
    closings combined."""
    parts, rng = WRITTEN[language], random.Random(f"{language}:{seed}")
    lines = [problem[0].upper() + problem[1:] for problem in parts["problem"]][:n]
    seen = set(lines)
    while len(lines) < n:
        line = f"{rng.choice(parts['open'])} {rng.choice(parts['problem'])} {rng.choice(parts['close'])}"
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def demo_lines(language: str) -> list[str]:
    from copilot.demo import tickets

    slots = {"{invoice}": "INV-2026-0142", "{amount}": "129,00 €", "{date}": "03/03/2026"}
    out = []
    for pair in tickets.LOCALISED.get(language, {}).values():
        for text in pair:
            for slot, value in slots.items():
                text = text.replace(slot, value)
            out.append(text)
    thanks = tickets.LOCALISED_THANKS.get(language)
    out += [thanks] if isinstance(thanks, str) else list(thanks or [])
    return out


def english_lines(n: int = PER_LANGUAGE) -> tuple[list[str], str]:
    try:
        with dataset("banking77/train.csv").open(encoding="utf-8", newline="") as handle:
            rows = [r["text"] for r in csv.DictReader(handle)]
        step = max(1, len(rows) // n)
        return rows[::step][:n], "banking77"
    except DataUnavailable:
        from copilot.demo import tickets

        texts = [o for f in tickets.FAMILIES for moods in f.openings.values() for o in moods]
        return texts[:n], "demo openings"


def model_size() -> str:
    import py3langid

    path = Path(py3langid.__file__).parent / "data" / "model.npz.xz"
    return f"{path.stat().st_size / 1e6:.2f} MB ({path.name}, inside the wheel)"


def main() -> int:
    english, source = english_lines()
    sample = [(line, "en", source) for line in english]
    for language in ("es", "de", "fr"):
        sample += [(line, language, "demo") for line in demo_lines(language)]
        sample += [(line, language, "written") for line in written_lines(language)]
    detect_language("warm up")
    started = time.perf_counter()
    found = [detect_language(text).code for text, _, _ in sample]
    seconds = time.perf_counter() - started
    right = Counter(lang for (_, lang, _), code in zip(sample, found, strict=True) if code == lang)
    total = Counter(lang for _, lang, _ in sample)
    accuracy = sum(right.values()) / len(sample)
    print(f"py3langid {version('py3langid')}, model {model_size()}; languages served: {', '.join(DEFAULT_LANGUAGES)}")
    print(f"{len(sample)} lines, accuracy {accuracy:.4f} (target 0.97); {1000 * seconds / len(sample):.2f} ms a line")
    for language in total:
        print(f"  {language}: {right[language]}/{total[language]} = {right[language] / total[language]:.4f}")
    for (text, language, origin), code in zip(sample, found, strict=True):
        if code != language:
            print(f"  wrong ({origin}, {language} -> {code}): {text[:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
