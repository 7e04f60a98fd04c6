"""notebooks: research notebooks, their sources, and the RAGFlow dataset and agent behind each."""
