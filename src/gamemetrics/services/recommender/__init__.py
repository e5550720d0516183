"""The recommender: items ranked for each player, learnt from what players like them bought, acquired and used."""
