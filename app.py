"""The Space's entry point (a Gradio Space runs `app.py`): cervix_hf's app, which lives in `cervix_hf/app.py`.

    python app.py [--help]

is `cervix-hf app`, from a checkout or a Space without installing anything. Research demo, never a diagnosis.
"""

from cervix_hf.app import main

if __name__ == "__main__":
    main()
