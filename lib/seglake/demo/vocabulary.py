"""French vocabularies for the demo world: names, places, streets, email domains, catalogue.

Weights are relative frequencies (roughly INSEE-like for names and cities) so common values repeat
as they do in real CRMs — the term-frequency effects that record linkage has to cope with.
"""

from __future__ import annotations

FEMALE_FIRST_NAMES: tuple[tuple[str, int], ...] = (
    ("Marie", 60), ("Nathalie", 30), ("Isabelle", 30), ("Sylvie", 25), ("Catherine", 25),
    ("Françoise", 20), ("Sandrine", 22), ("Valérie", 22), ("Christine", 20), ("Véronique", 18),
    ("Céline", 20), ("Stéphanie", 20), ("Aurélie", 18), ("Émilie", 18), ("Julie", 22),
    ("Camille", 20), ("Léa", 18), ("Manon", 16), ("Chloé", 16), ("Inès", 12), ("Zoé", 10),
    ("Anaïs", 12), ("Maëlle", 8), ("Clémence", 10), ("Hélène", 14), ("Cécile", 12),
    ("Sophie", 20), ("Laure", 10), ("Agnès", 8), ("Béatrice", 8), ("Geneviève", 6),
    ("Anne-Sophie", 10), ("Marie-Claire", 8), ("Marie-Hélène", 7), ("Anne-Laure", 8),
    ("Élodie", 12), ("Margaux", 10), ("Océane", 8), ("Noémie", 8), ("Lucie", 12),
    ("Sarah", 14), ("Laura", 12), ("Pauline", 12), ("Mélanie", 12), ("Audrey", 12),
    ("Amandine", 10), ("Jeanne", 8), ("Louise", 10), ("Éloïse", 6), ("Capucine", 5),
    ("Fatima", 8), ("Yasmine", 6), ("Leïla", 6), ("Nadia", 6), ("Aïcha", 5),
)
MALE_FIRST_NAMES: tuple[tuple[str, int], ...] = (
    ("Jean", 50), ("Pierre", 35), ("Michel", 30), ("Philippe", 30), ("Alain", 25),
    ("Nicolas", 30), ("Christophe", 25), ("Stéphane", 25), ("Laurent", 25), ("Frédéric", 20),
    ("Sébastien", 22), ("Julien", 25), ("David", 22), ("Thomas", 25), ("Maxime", 18),
    ("Alexandre", 18), ("Antoine", 18), ("Guillaume", 16), ("Mathieu", 16), ("Jérôme", 15),
    ("François", 18), ("Éric", 16), ("Thierry", 14), ("Olivier", 18), ("Hugo", 14),
    ("Lucas", 16), ("Théo", 14), ("Louis", 14), ("Raphaël", 10), ("Gaël", 6), ("Noël", 5),
    ("Jean-Pierre", 14), ("Jean-Luc", 10), ("Jean-François", 10), ("Jean-Marc", 8),
    ("Pierre-Yves", 6), ("Paul-Henri", 3), ("Benoît", 10), ("Cédric", 10), ("Grégory", 10),
    ("Rémi", 8), ("Anthony", 10), ("Kévin", 10), ("Jérémy", 10), ("Loïc", 8), ("Yannick", 8),
    ("Mohamed", 10), ("Karim", 6), ("Mehdi", 6), ("Youssef", 5), ("Samir", 5),
)
LAST_NAMES: tuple[tuple[str, int], ...] = (
    ("Martin", 60), ("Bernard", 35), ("Thomas", 30), ("Petit", 28), ("Robert", 28),
    ("Richard", 26), ("Durand", 25), ("Dubois", 25), ("Moreau", 24), ("Laurent", 23),
    ("Simon", 22), ("Michel", 22), ("Lefèvre", 20), ("Leroy", 20), ("Roux", 18), ("David", 18),
    ("Bertrand", 17), ("Morel", 17), ("Fournier", 16), ("Girard", 16), ("Bonnet", 15),
    ("Dupont", 15), ("Lambert", 15), ("Fontaine", 14), ("Rousseau", 14), ("Vincent", 14),
    ("Muller", 14), ("Lefebvre", 14), ("Faure", 13), ("André", 13), ("Mercier", 13),
    ("Blanc", 12), ("Guérin", 12), ("Boyer", 12), ("Garnier", 12), ("Chevalier", 12),
    ("François", 11), ("Legrand", 11), ("Gauthier", 11), ("Garcia", 11), ("Perrin", 11),
    ("Robin", 10), ("Clément", 10), ("Morin", 10), ("Nicolas", 10), ("Henry", 10),
    ("Roussel", 10), ("Mathieu", 10), ("Gautier", 10), ("Masson", 9), ("Marchand", 9),
    ("Duval", 9), ("Denis", 9), ("Dumont", 9), ("Marie", 9), ("Lemaire", 9), ("Noël", 9),
    ("Meyer", 8), ("Dufour", 8), ("Meunier", 8), ("Brun", 8), ("Blanchard", 8), ("Giraud", 8),
    ("Joly", 8), ("Rivière", 8), ("Lucas", 8), ("Brunet", 8), ("Gaillard", 7), ("Barbier", 7),
    ("Arnaud", 7), ("Martinez", 7), ("Gérard", 7), ("Roche", 7), ("Renard", 7), ("Schmitt", 7),
    ("Roy", 7), ("Leroux", 7), ("Colin", 7), ("Vidal", 7), ("Caron", 7), ("Picard", 6),
    ("Roger", 6), ("Fabre", 6), ("Aubert", 6), ("Lemoine", 6), ("Renaud", 6), ("Dumas", 6),
    ("Lacroix", 6), ("Olivier", 6), ("Philippe", 6), ("Bourgeois", 6), ("Pierre", 6),
    ("Benoît", 5), ("Rey", 5), ("Leclerc", 5), ("Payet", 5), ("Rolland", 5), ("Leclercq", 5),
    ("Guillaume", 5), ("Lecomte", 5), ("Lopez", 5), ("Jean", 5), ("Dupuy", 5), ("Guillot", 5),
    ("Hubert", 5), ("Berger", 5), ("Carpentier", 5), ("Sanchez", 5), ("Dupuis", 5),
    ("Moulin", 5), ("Louis", 5), ("Deschamps", 5), ("Huet", 5), ("Vasseur", 5), ("Perez", 5),
    ("Boucher", 5), ("Fleury", 5), ("Royer", 5), ("Klein", 5), ("Jacquet", 5), ("Adam", 5),
    ("Paris", 4), ("Poirier", 4), ("Marty", 4), ("Aubry", 4), ("Guyot", 4), ("Carré", 4),
    ("Charles", 4), ("Renault", 4), ("Charpentier", 4), ("Ménard", 4), ("Maillard", 4),
    ("Baron", 4), ("Bertin", 4), ("Bailly", 4), ("Hervé", 4), ("Schneider", 4),
    ("Fernandez", 4), ("Le Gall", 4), ("Collet", 4), ("Léger", 4), ("Bouvier", 4),
    ("Julien", 4), ("Prévost", 4), ("Millet", 4), ("Perrot", 4), ("Daniel", 4),
    ("Le Roux", 4), ("Cousin", 4), ("Germain", 4), ("Breton", 4), ("Besson", 4),
    ("Langlois", 4), ("Rémy", 3), ("Le Goff", 3), ("Pelletier", 3), ("Lévêque", 3),
    ("Perrier", 3), ("Leblanc", 3), ("Barré", 3), ("Lebrun", 3), ("Marchal", 3),
    ("Weber", 3), ("Mallet", 3), ("Hamon", 3), ("Boulanger", 3), ("Jacob", 3),
    ("Monnier", 3), ("Michaud", 3), ("Rodriguez", 3), ("Guichard", 3), ("Gillet", 3),
    ("Étienne", 3), ("Grondin", 3), ("Poulain", 3), ("Tessier", 3), ("Chevallier", 3),
    ("Collin", 3), ("Chauvin", 3), ("Da Silva", 3), ("Bouchet", 3), ("Gay", 3),
    ("Lemaître", 3), ("Bénard", 3), ("Maréchal", 3), ("Humbert", 3), ("Reynaud", 3),
    ("Antoine", 3), ("Hoarau", 3), ("Perret", 3), ("Barthélemy", 3), ("Cordier", 3),
    ("Pichon", 3), ("Lejeune", 3), ("Gilbert", 3), ("Lamy", 3), ("Delaunay", 3),
    ("Pasquier", 3), ("Carlier", 3), ("Laporte", 3), ("N'Diaye", 2), ("Diallo", 2),
    ("Benali", 2), ("Haddad", 2), ("Nguyen", 3), ("Dos Santos", 2), ("Ferreira", 2),
    ("de La Fontaine", 1), ("Saint-Martin", 1), ("Lefèvre-Utile", 1), ("Martin-Dubois", 1),
    ("Le Guennec", 1), ("Kerbrat", 1), ("Ollivier", 1), ("Thévenin", 1), ("Bézier", 1),
)

# (city, postcode, weight ~ population in thousands); Paris/Lyon/Marseille by arrondissement.
CITIES: tuple[tuple[str, str, int], ...] = tuple(
    [("Paris", f"750{n:02d}", 110) for n in range(1, 21)]
    + [("Lyon", f"6900{n}", 57) for n in range(1, 10)]
    + [("Marseille", f"130{n:02d}", 54) for n in range(1, 17)]
    + [
        ("Toulouse", "31000", 250), ("Toulouse", "31100", 120), ("Toulouse", "31200", 100),
        ("Nice", "06000", 180), ("Nice", "06100", 90), ("Nice", "06200", 70),
        ("Nantes", "44000", 200), ("Nantes", "44300", 110), ("Montpellier", "34000", 180),
        ("Montpellier", "34070", 120), ("Strasbourg", "67000", 180), ("Strasbourg", "67100", 110),
        ("Bordeaux", "33000", 180), ("Bordeaux", "33800", 80), ("Lille", "59000", 130),
        ("Lille", "59800", 100), ("Rennes", "35000", 130), ("Rennes", "35200", 90),
        ("Reims", "51100", 180), ("Toulon", "83000", 100), ("Toulon", "83100", 75),
        ("Saint-Étienne", "42000", 120), ("Saint-Étienne", "42100", 50), ("Le Havre", "76600", 170),
        ("Grenoble", "38000", 110), ("Grenoble", "38100", 50), ("Dijon", "21000", 160),
        ("Angers", "49000", 155), ("Villeurbanne", "69100", 150), ("Nîmes", "30000", 150),
        ("Saint-Denis", "93200", 110), ("Aix-en-Provence", "13090", 70),
        ("Aix-en-Provence", "13100", 75), ("Clermont-Ferrand", "63000", 145),
        ("Le Mans", "72000", 145), ("Brest", "29200", 140), ("Tours", "37000", 138),
        ("Amiens", "80000", 135), ("Limoges", "87000", 130), ("Annecy", "74000", 130),
        ("Perpignan", "66000", 120), ("Boulogne-Billancourt", "92100", 120),
        ("Metz", "57000", 118), ("Besançon", "25000", 117), ("Orléans", "45000", 116),
        ("Rouen", "76000", 114), ("Saint-Denis", "97400", 110), ("Argenteuil", "95100", 110),
        ("Montreuil", "93100", 110), ("Mulhouse", "68100", 108), ("Caen", "14000", 106),
        ("Nancy", "54000", 104), ("Tourcoing", "59200", 98), ("Roubaix", "59100", 98),
        ("Nanterre", "92000", 96), ("Vitry-sur-Seine", "94400", 95), ("Créteil", "94000", 92),
        ("Avignon", "84000", 90), ("Poitiers", "86000", 89), ("Aubervilliers", "93300", 88),
        ("Dunkerque", "59140", 87), ("Aulnay-sous-Bois", "93600", 86), ("Colombes", "92700", 86),
        ("Asnières-sur-Seine", "92600", 86), ("Versailles", "78000", 84),
        ("Courbevoie", "92400", 83), ("Cherbourg-en-Cotentin", "50100", 78),
        ("Rueil-Malmaison", "92500", 78), ("Béziers", "34500", 78), ("La Rochelle", "17000", 77),
        ("Pau", "64000", 76), ("Champigny-sur-Marne", "94500", 76), ("Antibes", "06600", 74),
        ("Saint-Maur-des-Fossés", "94100", 74), ("Cannes", "06400", 73), ("Calais", "62100", 72),
        ("Saint-Nazaire", "44600", 72), ("Colmar", "68000", 68), ("Drancy", "93700", 71),
        ("Ajaccio", "20000", 70), ("Mérignac", "33700", 70), ("Bourges", "18000", 65),
        ("Issy-les-Moulineaux", "92130", 68), ("Levallois-Perret", "92300", 65),
        ("La Seyne-sur-Mer", "83500", 62), ("Quimper", "29000", 63), ("Valence", "26000", 64),
        ("Villeneuve-d'Ascq", "59650", 62), ("Noisy-le-Grand", "93160", 68),
        ("Troyes", "10000", 61),
        ("Neuilly-sur-Seine", "92200", 60), ("Antony", "92160", 62), ("Sarcelles", "95200", 58),
        ("Niort", "79000", 59), ("Chambéry", "73000", 59), ("Lorient", "56100", 57),
        ("Vannes", "56000", 54), ("Beauvais", "60000", 56), ("Cergy", "95000", 66),
        ("Évry-Courcouronnes", "91000", 67), ("Saint-Malo", "35400", 47), ("Bayonne", "64100", 52),
        ("Arles", "13200", 51), ("Laval", "53000", 50), ("Chartres", "28000", 39),
        ("Saint-Quentin", "02100", 54), ("Angoulême", "16000", 42), ("Blois", "41000", 46),
        ("Annemasse", "74100", 37), ("Bastia", "20200", 48), ("Fréjus", "83600", 55),
        ("Sète", "34200", 44), ("Biarritz", "64200", 25), ("Honfleur", "14600", 8),
        ("Sainte-Geneviève-des-Bois", "91700", 36), ("Châlons-en-Champagne", "51000", 44),
        ("Le Puy-en-Velay", "43000", 19), ("L'Haÿ-les-Roses", "94240", 31),
    ]
)

STREET_TYPES: tuple[tuple[str, str, int], ...] = (
    # (full word, usual abbreviation, weight)
    ("rue", "r.", 60), ("avenue", "av.", 18), ("boulevard", "bd", 8), ("place", "pl.", 4),
    ("allée", "all.", 4), ("impasse", "imp.", 3), ("chemin", "ch.", 3), ("quai", "qu.", 1),
    ("route", "rte", 3), ("square", "sq.", 1),
)
STREET_NAMES: tuple[str, ...] = (
    "de la République", "Jean Jaurès", "Victor Hugo", "du Général de Gaulle", "de la Paix",
    "Pasteur", "Émile Zola", "des Lilas", "de la Gare", "du Moulin", "des Écoles",
    "de l'Église", "Gambetta", "Jules Ferry", "de Verdun", "Louis Pasteur", "Carnot",
    "du Château", "des Tilleuls", "des Acacias", "de la Liberté", "Voltaire", "Jean Moulin",
    "Anatole France", "Saint-Michel", "des Peupliers", "du Stade", "de Paris", "Nationale",
    "Maréchal Foch", "Aristide Briand", "Albert Camus", "de la Mairie", "des Vignes",
    "du Port", "Sainte-Anne", "Georges Clemenceau", "des Rosiers", "du Lavoir", "Molière",
    "Paul Bert", "Henri Barbusse", "de Bretagne", "du 8 Mai 1945", "Édouard Herriot",
    "Charles de Gaulle", "des Cerisiers", "de l'Hôtel de Ville", "Lamartine", "Berthelot",
)
ADDRESS_COMPLEMENTS: tuple[str, ...] = (
    "Bât. A", "Bât. B", "Bâtiment C", "Apt 12", "Appartement 3", "Résidence Les Pins",
    "Escalier 2", "3e étage", "Porte 14", "Lieu-dit Le Bourg",
)

# Email providers as French consumers use them (relative shares).
EMAIL_DOMAINS: tuple[tuple[str, int], ...] = (
    ("gmail.com", 34), ("orange.fr", 14), ("hotmail.fr", 10), ("yahoo.fr", 7), ("free.fr", 7),
    ("sfr.fr", 5), ("laposte.net", 5), ("outlook.fr", 5), ("wanadoo.fr", 4), ("icloud.com", 4),
    ("live.fr", 3), ("hotmail.com", 2),
)

# Catalogue: (slug, French label, median price €, price spread (lognormal sigma), item nouns).
CATEGORIES: tuple[tuple[str, str, float, float, tuple[str, ...]], ...] = (
    ("mode-femme", "Mode femme", 39.0, 0.6,
     ("Robe portefeuille", "Blouse fluide", "Jean droit", "Pull col roulé", "Trench-coat",
      "Jupe plissée", "Cardigan", "Top en lin", "Manteau en laine", "Chemisier")),
    ("mode-homme", "Mode homme", 45.0, 0.6,
     ("Chemise Oxford", "Pull marin", "Chino", "Veste en jean", "Polo piqué", "Sweat à capuche",
      "Parka", "T-shirt en coton bio", "Blazer", "Pantalon de costume")),
    ("chaussures", "Chaussures", 75.0, 0.5,
     ("Baskets en cuir", "Bottines", "Mocassins", "Escarpins", "Sandales", "Chaussures de ville",
      "Espadrilles", "Derbies", "Chaussons", "Boots")),
    ("maison-deco", "Maison & déco", 49.0, 0.8,
     ("Plaid en laine", "Coussin en velours", "Vase en céramique", "Lampe à poser", "Miroir rond",
      "Linge de lit en lin", "Bougie parfumée", "Tapis berbère", "Service de table",
      "Cadre photo")),
    ("beaute", "Beauté", 24.0, 0.6,
     ("Crème hydratante", "Sérum à l'acide hyaluronique", "Eau de parfum", "Rouge à lèvres",
      "Shampooing solide", "Huile sèche", "Mascara", "Gommage corps", "Palette de fards",
      "Baume à lèvres")),
    ("high-tech", "High-Tech", 149.0, 0.9,
     ("Écouteurs sans fil", "Enceinte Bluetooth", "Montre connectée", "Chargeur rapide",
      "Liseuse", "Casque audio", "Batterie externe", "Clavier sans fil", "Tablette", "Webcam HD")),
    ("sport", "Sport & plein air", 55.0, 0.7,
     ("Tapis de yoga", "Legging de sport", "Sac de randonnée", "Gourde isotherme",
      "Chaussures de trail", "Veste coupe-vent", "Haltères", "Raquette de padel",
      "Vélo d'appartement",
      "Tente 2 places")),
    ("enfant", "Enfant & jouets", 29.0, 0.7,
     ("Peluche", "Jeu de construction", "Puzzle 1000 pièces", "Pyjama enfant", "Cartable",
      "Draisienne", "Livre d'éveil", "Jeu de société", "Poupée", "Circuit de billes")),
    ("epicerie-fine", "Épicerie fine", 16.0, 0.5,
     ("Coffret de thés", "Chocolats pralinés", "Huile d'olive AOP", "Foie gras mi-cuit",
      "Confiture artisanale", "Miel de lavande", "Calissons d'Aix", "Vin rouge de Bordeaux",
      "Champagne brut", "Caramels au beurre salé")),
    ("livres-loisirs", "Livres & loisirs", 19.0, 0.5,
     ("Roman", "Bande dessinée", "Beau livre", "Carnet de notes", "Kit de broderie",
      "Agenda 2026", "Coffret aquarelle", "Guide de voyage", "Livre de cuisine", "Puzzle adulte")),
)
PRODUCT_QUALIFIERS: tuple[str, ...] = (
    "Essentiel", "Premium", "Édition limitée", "Collection Été", "Collection Hiver", "Éco-conçu",
    "Fabriqué en France", "Signature", "Classique", "Nouveauté",
)
BRANDS: tuple[str, ...] = (
    "Maison Lumière", "Atelier Sorel", "Les Petits Riens", "Bleu Marine & Co", "Côté Sud",
    "Nordet", "Vallée Verte", "Ô Naturel", "Parisienne", "Alpage", "Ligne Claire", "Kermor",
)
UTM_ORGANIC: tuple[tuple[str | None, str | None, str | None, int], ...] = (
    # (source, medium, campaign, weight): how visits arrive when not from our email
    (None, None, None, 40), ("google", "organic", None, 22), ("google", "cpc", "marque", 8),
    ("google", "cpc", "shopping", 7), ("facebook", "paid_social", "retargeting", 6),
    ("instagram", "social", None, 6), ("awin", "affiliate", "cashback", 4),
    ("bing", "organic", None, 2), ("tiktok", "paid_social", "influence", 3),
    ("le-bon-plan", "referral", None, 2),
)
COUPONS: tuple[str, ...] = ("BIENVENUE10", "SOLDES20", "BLACKFRIDAY", "NOEL15", "FIDELITE5",
                            "NEWSLETTER10", "LIVRAISONOFFERTE")
