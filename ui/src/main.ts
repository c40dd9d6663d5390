// Entry point: the stylesheet (emitted as a linked, hashed CSS file: CSP allows no inline style)
// and the frame element.
import './styles.css';
import './components/app';
