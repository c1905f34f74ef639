"""Other providers' wire protocols, each a thin translator onto kaskad's services."""
