"""Write the zoo's catalog, ``models/references/catalog.json``, which ``ppzoo list`` reads (run by
hand after adding or changing an entry; ``tests/test_zoo.py`` checks that it is up to date).

    python models/references/make_catalog.py
"""

import json

from ppzoo.models import registry

if __name__ == "__main__":
    registry.CATALOG.write_text(json.dumps(registry.catalog(), indent=1) + "\n")
    print(f"wrote {registry.CATALOG}")
