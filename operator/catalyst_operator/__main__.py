"""`python -m catalyst_operator` runs the operator, exactly like the `catalyst-ocr-operator` script."""

from catalyst_operator.cli import main

if __name__ == "__main__":
    main()
